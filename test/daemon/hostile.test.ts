/**
 * Hostile clients on a real daemon, over raw sockets and raw HTTP/2: calls
 * refused at their headers, half-sent requests, connections that never set
 * up, and more connections than the daemon takes. After each attack the
 * daemon still answers a well-behaved client on its own, already-open
 * connection. Timeouts are test-small (200 ms); every wait is for an event.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { connect as connectHttp2, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";
import { connect as connectTcp, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import * as grpc from "@grpc/grpc-js";
import { SessionRegistryClient as GeneratedClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import type { Logger } from "../../src/core/logger.js";
import { DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/server.js";
import { ErrorInfo } from "../../src/gen/google/rpc/error_details.js";
import { Status } from "../../src/gen/google/rpc/status.js";
import { REGISTRY_SERVICE_NAME } from "../../src/daemon/health.js";
import { BUSY_MESSAGE, HELD_PER_PENDING, PREEMPTED_MESSAGE } from "../../src/transport/call-guard.js";
import { HealthClient } from "./health-client.js";
import { makeTestCerts, type TestCerts } from "./certs.js";
import { halfSentCall } from "../helpers/h2.js";

const TOKEN = "hostile-test-write-token-0123456789";
const READ_TOKEN = "hostile-test-read-token-0123456789";
const REGISTER = "/sessionregistry.v1.SessionRegistry/Register";
const LOOKUP = "/sessionregistry.v1.SessionRegistry/Lookup";

interface LogLine {
  level: string;
  msg: string;
  fields: Record<string, unknown>;
}

/** A Logger that keeps its lines, for counting refusals. */
function recordingLogger(): Logger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at = (level: string) => (fields: Record<string, unknown>, msg: string) => void lines.push({ level, msg, fields });
  return { lines, debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error") };
}

interface Hostile {
  daemon: RunningDaemon;
  log: ReturnType<typeof recordingLogger>;
  /** A client on a connection of its own, opened (with a call) before the attack. */
  probe: GeneratedClient;
  /** Raw sockets and sessions the test opened; destroyed after it. */
  sockets: Socket[];
  sessions: ClientHttp2Session[];
  stop(): Promise<void>;
}

async function startHostile(config: Partial<DaemonConfig>, opts: { token?: string; tls?: TestCerts } = {}): Promise<Hostile> {
  const log = recordingLogger();
  const daemon = await startDaemon(
    { ...DEFAULT_CONFIG, logLevel: "silent", ...config, listen: "127.0.0.1:0", httpListen: undefined },
    // A long interval: a test sees the first line of a burst at once, and the rest at shutdown.
    { logger: log, refusalLogIntervalMs: 60_000 },
  );
  const credentials = opts.tls !== undefined ? grpc.credentials.createSsl(opts.tls.ca.cert) : grpc.credentials.createInsecure();
  const probe = new GeneratedClient(daemon.address, credentials, { "grpc.use_local_subchannel_pool": 1 });
  const hostile: Hostile = {
    daemon,
    log,
    probe,
    sockets: [],
    sessions: [],
    async stop() {
      for (const s of hostile.sessions) s.destroy();
      for (const s of hostile.sockets) s.destroy();
      probe.close();
      await daemon.shutdown();
    },
  };
  await probeLookup(hostile, opts.token);
  return hostile;
}

/** A Lookup of a session that does not exist: NOT_FOUND means the daemon read and answered the call. */
function probeLookup(h: Hostile, token?: string): Promise<void> {
  const md = new grpc.Metadata();
  if (token !== undefined) md.set("authorization", `Bearer ${token}`);
  return new Promise((resolve, reject) =>
    h.probe.lookup({ table: "", key: { $case: "id", value: "nobody" } }, md, (err) => {
      if (err?.code === grpc.status.NOT_FOUND) resolve();
      else reject(new Error(`the probe's Lookup should be NOT_FOUND, got ${err ? `${err.code} ${err.details}` : "OK"}`));
    }),
  );
}

function h2(h: Hostile, tls?: TestCerts): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session =
      tls === undefined ? connectHttp2(`http://${h.daemon.address}`) : connectHttp2(`https://${h.daemon.address}`, { ca: tls.ca.cert });
    h.sessions.push(session);
    session.once("connect", () => resolve(session));
    session.once("error", reject);
  });
}

interface CallStatus {
  code: number;
  message: string;
  headers: IncomingHttpHeaders;
}

/** The grpc-status a stream ends with, from a trailers-only response or from trailers. */
function statusOf(stream: ClientHttp2Stream): Promise<CallStatus> {
  return new Promise((resolve, reject) => {
    const done = (headers: IncomingHttpHeaders) => {
      if (headers["grpc-status"] === undefined) return;
      resolve({ code: Number(headers["grpc-status"]), message: decodeURIComponent(String(headers["grpc-message"] ?? "")), headers });
    };
    stream.on("response", done);
    stream.on("trailers", done);
    stream.on("error", reject);
    stream.on("close", () => reject(new Error(`the stream closed without a status (RST code ${stream.rstCode})`)));
    stream.resume();
  });
}

function errorInfoOf(headers: IncomingHttpHeaders): ErrorInfo {
  const status = Status.decode(Buffer.from(String(headers["grpc-status-details-bin"]), "base64"));
  expect(status.details).to.have.length(1);
  return ErrorInfo.decode(status.details[0]!.value);
}

function closed(emitter: Socket | ClientHttp2Session): Promise<void> {
  return new Promise((resolve) => (emitter.closed || emitter.destroyed ? resolve() : emitter.once("close", () => resolve())));
}

function rawSocket(h: Hostile): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectTcp(h.daemon.port, "127.0.0.1");
    h.sockets.push(socket);
    socket.on("error", () => {});
    // Read (and drop) what the daemon sends, such as its HTTP/2 SETTINGS: a socket not read never sees its end.
    socket.resume();
    socket.once("connect", () => resolve(socket));
    socket.once("error", reject);
  });
}

/** A connection of the client's own: grpc-js shares one between clients of the same address otherwise. */
const LOCAL = { "grpc.use_local_subchannel_pool": 1 };

function warnings(h: Hostile, msg: RegExp): LogLine[] {
  return h.log.lines.filter((l) => l.level === "warn" && msg.test(l.msg));
}

describe("hostile clients", () => {
  let dir: string;
  let tokensFile: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sr-hostile-"));
    tokensFile = join(dir, "tokens");
    await writeFile(tokensFile, `write ${TOKEN}\nread ${READ_TOKEN}\n`);
  });

  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describe("authentication at the headers", () => {
    let h: Hostile;

    beforeEach(async () => {
      h = await startHostile({ authTokensFile: tokensFile }, { token: TOKEN });
    });

    afterEach(async () => {
      await h.stop();
    });

    it("refuses calls without a token before reading their half-sent messages, as it refuses any other", async () => {
      const session = await h2(h);
      // Just under the message limit announced, a part of it sent, the rest never.
      const streams = Array.from({ length: 20 }, () => halfSentCall(session, REGISTER, 60 * 1024, 32 * 1024));
      const statuses = await Promise.all(streams.map(statusOf));
      for (const s of statuses) {
        expect(s.code).to.equal(grpc.status.UNAUTHENTICATED);
        expect(s.message).to.equal('missing credentials; send metadata "authorization: Bearer <token>"');
        expect(errorInfoOf(s.headers)).to.deep.include({ reason: "UNAUTHENTICATED", domain: "sessionregistry.v1" });
      }
      const refused = h.log.lines.filter((l) => l.msg === "rpc rejected" && l.fields.reason === "UNAUTHENTICATED");
      expect(refused).to.have.length(20);
      expect(refused[0]!.fields).to.include({ method: "Register", code: "UNAUTHENTICATED" });
      expect(refused[0]!.fields.peer).to.match(/^127\.0\.0\.1:\d+$/);
      await probeLookup(h, TOKEN);
    });

    it("refuses a role too low for the method before reading the message", async () => {
      const session = await h2(h);
      const s = await statusOf(halfSentCall(session, REGISTER, 60 * 1024, 32 * 1024, READ_TOKEN));
      expect(s.code).to.equal(grpc.status.PERMISSION_DENIED);
      expect(s.message).to.equal("permission denied: Register needs the write role; this token has read");
      const info = errorInfoOf(s.headers);
      expect(info.reason).to.equal("PERMISSION_DENIED");
      expect(Object.fromEntries(info.metadata)).to.deep.equal({ method: "Register", role: "read", table: "" });
      await probeLookup(h, TOKEN);
    });

    it("reads a known token's message and answers it", async () => {
      const session = await h2(h);
      // An empty LookupRequest: no key, so INVALID_ARGUMENT: the request was read and validated.
      const stream = session.request({
        ":method": "POST",
        ":path": LOOKUP,
        "content-type": "application/grpc",
        te: "trailers",
        authorization: `Bearer ${TOKEN}`,
      });
      stream.end(Buffer.alloc(5));
      const s = await statusOf(stream);
      expect(s.code).to.equal(grpc.status.INVALID_ARGUMENT);
    });
  });

  describe("unfinished requests", () => {
    let h: Hostile;

    afterEach(async () => {
      await h.stop();
    });

    it("ends a call whose request does not arrive within --request-timeout and closes its connection", async () => {
      h = await startHostile({ authTokensFile: tokensFile, requestTimeoutMs: 200 }, { token: TOKEN });
      const session = await h2(h);
      const streams = Array.from({ length: 5 }, () => halfSentCall(session, REGISTER, 60 * 1024, 40 * 1024, TOKEN));
      const statuses = await Promise.all(streams.map(statusOf));
      for (const s of statuses) {
        expect(s.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
        expect(s.message).to.match(/^the request did not arrive in full within 200 ms of the call's start \(--request-timeout\)/);
      }
      await closed(session);
      // Five timeouts, one line now; the other four are counted into the next one.
      expect(warnings(h, /--request-timeout/).map((l) => l.fields.count)).to.deep.equal([1]);
      await probeLookup(h, TOKEN);
      await h.stop();
      expect(warnings(h, /--request-timeout/).map((l) => l.fields.count)).to.deep.equal([1, 4]);
    });

    it("holds a call that sent its message but not the end of its request to the same timeout", async () => {
      h = await startHostile({ requestTimeoutMs: 200 });
      const session = await h2(h);
      const stream = session.request({ ":method": "POST", ":path": LOOKUP, "content-type": "application/grpc", te: "trailers" });
      // A whole (empty) message, then the start of a second one that never ends.
      const second = Buffer.alloc(5);
      second.writeUInt32BE(40 * 1024, 1);
      stream.write(Buffer.concat([Buffer.alloc(5), second, Buffer.alloc(1024)]));
      expect((await statusOf(stream)).code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      await closed(session);
      await probeLookup(h);
    });

    it("reads at most --max-pending-requests incomplete requests at once, and holds later calls unread until one completes", async () => {
      h = await startHostile({ maxPendingRequests: 4, requestTimeoutMs: 60_000 });
      const session = await h2(h);
      const halves = Array.from({ length: 4 }, () => halfSentCall(session, REGISTER, 60 * 1024, 40 * 1024));
      // A whole call behind them on the same connection (frames arrive in order): an empty Lookup, INVALID_ARGUMENT once read.
      const lookup = session.request({ ":method": "POST", ":path": LOOKUP, "content-type": "application/grpc", te: "trailers" });
      lookup.end(Buffer.alloc(5));
      let answered = false;
      const lookupStatus = statusOf(lookup).then((s) => ((answered = true), s));
      // A ping answered means the daemon has taken in every frame sent before it.
      await new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
      expect(answered).to.equal(false);
      expect(h.log.lines.filter((l) => /--max-pending-requests/.test(l.msg)).map((l) => l.fields.count)).to.deep.equal([1]);
      // One half-sent call goes; the held Lookup takes its slot and is answered.
      halves[0]!.close();
      expect((await lookupStatus).code).to.equal(grpc.status.INVALID_ARGUMENT);
      await probeLookup(h);
    });
  });

  describe("waiting calls", () => {
    let h: Hostile;

    afterEach(async () => {
      await h.stop();
    });

    it("refuses a call at its headers with UNAVAILABLE once HELD_PER_PENDING times --max-pending-requests calls wait, and serves again once they go", async () => {
      h = await startHostile({ maxPendingRequests: 2, requestTimeoutMs: 60_000 });
      const session = await h2(h);
      // Two read, eight waiting: the most there may be.
      const halves = Array.from({ length: 2 + 2 * HELD_PER_PENDING }, () => halfSentCall(session, REGISTER, 60 * 1024, 1024));
      const extra = session.request({ ":method": "POST", ":path": LOOKUP, "content-type": "application/grpc", te: "trailers" });
      extra.end(Buffer.alloc(5));
      const refused = await statusOf(extra);
      expect(refused.code).to.equal(grpc.status.UNAVAILABLE);
      expect(refused.message).to.equal(BUSY_MESSAGE);
      expect(warnings(h, /too many calls are waiting/).map((l) => l.fields.count)).to.deep.equal([1]);
      for (const half of halves) half.close();
      await probeLookup(h);
    });
  });

  describe("read slots", () => {
    let h: Hostile;

    afterEach(async () => {
      await h.stop();
    });

    it("gives a call on a connection with no read slot the slot of the oldest half-sent call of the connection holding the most", async () => {
      h = await startHostile({ maxPendingRequests: 2, requestTimeoutMs: 60_000 });
      const session = await h2(h);
      const halves = [0, 1].map(() => halfSentCall(session, REGISTER, 60 * 1024, 1024));
      const ping = () => new Promise<void>((resolve, reject) => session.ping((err) => (err ? reject(err) : resolve())));
      await ping();
      // Both slots are taken by one connection; the probe's connection has none: it is read at once, not after 60 s.
      const first = statusOf(halves[0]!);
      await probeLookup(h);
      const preempted = await first;
      expect(preempted.code).to.equal(grpc.status.UNAVAILABLE);
      expect(preempted.message).to.equal(PREEMPTED_MESSAGE);
      expect(warnings(h, /to read calls of other connections/).map((l) => l.fields.count)).to.deep.equal([1]);
      // The other half-sent call is still being read: one slot per connection is left alone.
      expect(halves[1]!.closed).to.equal(false);
      await probeLookup(h);
      for (const half of halves) half.close();
    });
  });

  describe("connection setup", () => {
    let h: Hostile;

    afterEach(async () => {
      await h.stop();
    });

    it("closes connections that send nothing within --connection-setup-timeout, logging them once per interval", async () => {
      h = await startHostile({ connectionSetupTimeoutMs: 200 });
      const sockets = await Promise.all(Array.from({ length: 5 }, () => rawSocket(h)));
      await Promise.all(sockets.map(closed));
      expect(warnings(h, /--connection-setup-timeout/).map((l) => l.fields.count)).to.deep.equal([1]);
      await probeLookup(h);
      await h.stop();
      expect(warnings(h, /--connection-setup-timeout/).map((l) => l.fields.count)).to.deep.equal([1, 4]);
    });

    /** A health check on `session`, then another once a later silent connection has been closed for its setup timeout. */
    async function callsOnPastSetupTimeout(session: ClientHttp2Session): Promise<void> {
      const check = () => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/grpc.health.v1.Health/Check",
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.end(Buffer.alloc(5));
        return statusOf(stream);
      };
      expect((await check()).code).to.equal(grpc.status.OK);
      // A silent connection accepted after it is closed by its own setup timeout, so the session's has passed too.
      await closed(await rawSocket(h));
      expect((await check()).code).to.equal(grpc.status.OK);
      expect(session.closed).to.equal(false);
    }

    it("keeps a connection that has started a call past the setup timeout", async () => {
      h = await startHostile({ connectionSetupTimeoutMs: 200 });
      await callsOnPastSetupTimeout(await h2(h));
    });

    it("closes a connection that trickles the HTTP/2 preface", async () => {
      h = await startHostile({ connectionSetupTimeoutMs: 200 });
      const socket = await rawSocket(h);
      const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      let i = 0;
      const trickle = setInterval(() => {
        if (i < preface.length && !socket.destroyed) socket.write(preface.subarray(i, ++i));
      }, 20);
      try {
        await closed(socket);
      } finally {
        clearInterval(trickle);
      }
      await probeLookup(h);
    });

    it("closes a TLS connection that never sends its ClientHello, and keeps TLS connections that have started a call", async () => {
      const certs = await makeTestCerts();
      try {
        h = await startHostile(
          { connectionSetupTimeoutMs: 200, tlsCert: certs.server.certPath, tlsKey: certs.server.keyPath },
          { tls: certs },
        );
        const socket = await rawSocket(h);
        await closed(socket);
        await probeLookup(h);
        // The gate knows a TLS connection's calls too (by the address and port under TLS).
        await callsOnPastSetupTimeout(await h2(h, certs));
      } finally {
        await certs.remove();
      }
    });
  });

  describe("--max-connections", () => {
    let h: Hostile;

    afterEach(async () => {
      await h.stop();
    });

    it("makes room for a new connection by closing the oldest that has started no call, logging them once per interval", async () => {
      h = await startHostile({ maxConnections: 3, connectionSetupTimeoutMs: 60_000 });
      // The probe holds one; two silent connections take the rest.
      const silent = await Promise.all([rawSocket(h), rawSocket(h)]);
      // Silent newcomers push out the oldest silent ones: they cannot hold the cap.
      const newcomers = [];
      for (let i = 0; i < 5; i++) newcomers.push(await rawSocket(h));
      await Promise.all([...silent, ...newcomers.slice(0, 3)].map(closed));
      expect(newcomers.slice(3).every((s) => !s.destroyed)).to.equal(true);
      // A client that calls gets in, in place of the oldest silent one, and keeps its place.
      const caller = new HealthClient(h.daemon.address, undefined, LOCAL);
      try {
        expect(await caller.check(REGISTRY_SERVICE_NAME)).to.equal("SERVING");
        await closed(newcomers[3]!);
        expect(newcomers[4]!.destroyed).to.equal(false);
        // The next newcomer pushes out the last silent one, not the caller.
        const last = await rawSocket(h);
        await closed(newcomers[4]!);
        expect(last.destroyed).to.equal(false);
        expect(await caller.check(REGISTRY_SERVICE_NAME)).to.equal("SERVING");
      } finally {
        caller.close();
      }
      await probeLookup(h);
      expect(warnings(h, /to make room/).map((l) => l.fields.count)).to.deep.equal([1]);
      await h.stop();
      const counts = warnings(h, /to make room/).map((l) => Number(l.fields.count));
      // Five newcomers, the caller and the last newcomer each pushed one out.
      expect(counts.reduce((a, b) => a + b, 0)).to.equal(7);
      expect(warnings(h, /refused connections/)).to.deep.equal([]);
    });

    it("refuses new connections as they arrive once every open one has started a call, logs them once per interval, and serves the open ones", async () => {
      h = await startHostile({ maxConnections: 3, connectionSetupTimeoutMs: 60_000 });
      // The probe holds one; two clients that have called take the rest.
      const callers = [new HealthClient(h.daemon.address, undefined, LOCAL), new HealthClient(h.daemon.address, undefined, LOCAL)];
      try {
        for (const c of callers) expect(await c.check(REGISTRY_SERVICE_NAME)).to.equal("SERVING");
        const extra = await Promise.all(Array.from({ length: 5 }, () => rawSocket(h)));
        await Promise.all(extra.map(closed));
        expect(warnings(h, /refused connections/).map((l) => l.fields.count)).to.deep.equal([1]);
        await probeLookup(h);
        for (const c of callers) expect(await c.check(REGISTRY_SERVICE_NAME)).to.equal("SERVING");
        // A new client is refused too while the cap is reached...
        const refused = new HealthClient(h.daemon.address, undefined, LOCAL);
        try {
          await refused.check(REGISTRY_SERVICE_NAME).then(
            () => expect.fail("a fourth connection should be refused"),
            (err: unknown) => expect(err).to.have.property("code", grpc.status.UNAVAILABLE),
          );
        } finally {
          refused.close();
        }
        // ...and served once a connection goes.
        callers[0]!.close();
        const served = new HealthClient(h.daemon.address, undefined, LOCAL);
        try {
          for (let i = 0; ; i++) {
            // The closed client's connection goes a moment after close(): until then the cap stands.
            const ok = await served.check(REGISTRY_SERVICE_NAME).then(
              () => true,
              () => false,
            );
            if (ok) break;
            if (i > 100) expect.fail("never served after a connection went");
            await new Promise((r) => setTimeout(r, 20));
          }
        } finally {
          served.close();
        }
      } finally {
        for (const c of callers) c.close();
      }
      await h.stop();
      const counts = warnings(h, /refused connections/).map((l) => Number(l.fields.count));
      expect(counts[0]).to.equal(1);
      expect(counts.reduce((a, b) => a + b, 0)).to.be.at.least(6);
    });
  });

  describe("metrics", () => {
    let h: Hostile;

    afterEach(async () => {
      await h.stop();
    });

    it("count the connections the daemon closed on its own, by why, and show those open", async () => {
      h = await startHostile({ metricsListen: "127.0.0.1:0", maxConnections: 3, connectionSetupTimeoutMs: 200, requestTimeoutMs: 200 });
      // The probe holds one connection; two half-sent calls take a second until their timeout closes it (once).
      const session = await h2(h);
      const statuses = await Promise.all([0, 1].map(() => statusOf(halfSentCall(session, REGISTER, 1024, 10))));
      expect(statuses.map((s) => s.code)).to.deep.equal([grpc.status.DEADLINE_EXCEEDED, grpc.status.DEADLINE_EXCEEDED]);
      // A third connection fills the cap; a fourth makes room by pushing it out (it has started no call).
      const silent = await rawSocket(h);
      const fourth = await rawSocket(h);
      await Promise.all([closed(silent), closed(session), closed(fourth)]);
      const res = await fetch(`http://${h.daemon.metricsAddress!}/metrics`);
      const text = await res.text();
      const value = (series: string) => Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1]);
      expect(value('session_registry_connections_closed_total{reason="evicted"}')).to.equal(1);
      expect(value('session_registry_connections_closed_total{reason="setup_timeout"}')).to.equal(1);
      expect(value('session_registry_connections_closed_total{reason="request_timeout"}')).to.equal(1);
      expect(value("session_registry_connections")).to.equal(1);
      expect(value("session_registry_pending_requests")).to.equal(0);
      expect(value("session_registry_held_requests")).to.equal(0);
    });
  });
});
