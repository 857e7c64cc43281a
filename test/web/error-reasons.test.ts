/**
 * Every ErrorInfo reason of the contract, made by a real daemon and read
 * over the HTTP door with plain fetch (Connect JSON): its code, its
 * ErrorInfo (in `debug` and in the base64 `value` a client decodes) with
 * exactly the metadata keys the proto's error table names, and for each
 * request gRPC can replay, the same message, metadata and field violations
 * as the gRPC transport gives.
 */
import { connect } from "node:net";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { fromBinary, fromJson, toBinary, type DescMessage, type JsonValue } from "@bufbuild/protobuf";
import { expect } from "chai";

import { BadRequestSchema, ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { SessionRegistry } from "../../src/gen/sessionregistry/v1/session_registry_pb.js";
import { ERROR_DOMAIN } from "../../src/core/errors.js";
import type { Table } from "../../src/core/model.js";
import { MemoryStore } from "../../src/store/memory/store.js";
import { post, SERVICE, watchMessages, type ErrorJson } from "../helpers/connect-json.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { envelope, unenvelope } from "../helpers/envelope.js";
import { protoErrorTable } from "../helpers/proto-errors.js";
import { callBytes, wireDetails } from "../helpers/raw.js";

const MIB = 1024 * 1024;
/** Any non-empty value, for metadata a test cannot know in advance. */
const ANY = /./;

/** What one case made: the refusal as the HTTP door sent it, and what its ErrorInfo metadata must be. */
interface Refusal {
  error: ErrorJson;
  metadata: Record<string, string | RegExp>;
  /** The same request over gRPC, to the same daemon: it must fail the same way. */
  grpc?: { d: TestDaemon; method: string; schema: DescMessage; body: JsonValue };
}

/** A store whose ListTables fails as a bug would: the daemon must answer INTERNAL and say nothing of it. */
class BrokenStore extends MemoryStore {
  override listTables(): Promise<Table[]> {
    return Promise.reject(new Error("secret detail of a bug at /srv/registry/store.ts:42"));
  }
}

/** A free loopback port nothing listens on. */
async function deadPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/**
 * A Watch whose client never reads: a raw HTTP/1.1 request that asks for
 * the connection to close after the response, paused until `drain`, which
 * reads the whole response and returns its stream's messages and end.
 */
function stalledWatch(port: number, body: unknown) {
  const socket = connect(port, "127.0.0.1");
  socket.pause();
  const request = envelope(body);
  socket.write(
    `POST /${SERVICE}/Watch HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/connect+json\r\n` +
      `content-length: ${request.length}\r\n\r\n`,
  );
  socket.write(request);
  return {
    async drain(): Promise<{ messages: Record<string, unknown>[]; end: { error?: ErrorJson } }> {
      const chunks: Buffer[] = [];
      socket.on("data", (c: Buffer) => chunks.push(c));
      socket.resume();
      await new Promise((resolve) => socket.once("close", resolve));
      const raw = Buffer.concat(chunks);
      const headEnd = raw.indexOf("\r\n\r\n");
      expect(raw.subarray(0, headEnd).toString("latin1")).to.match(/transfer-encoding: chunked/i);
      // De-chunk the body, then split it into 5-byte envelopes.
      const parts: Buffer[] = [];
      for (let at = headEnd + 4; ;) {
        const lineEnd = raw.indexOf("\r\n", at);
        const size = parseInt(raw.subarray(at, lineEnd).toString("latin1"), 16);
        if (size === 0) break;
        parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
        at = lineEnd + 2 + size + 2;
      }
      const { messages, end } = unenvelope(Buffer.concat(parts));
      if (end === undefined) throw new Error(`the stream ended without its end-of-stream message after ${messages.length} messages`);
      return { messages, end };
    },
  };
}

describe("the HTTP door's errors: every reason over Connect JSON", function () {
  this.timeout(60_000);
  const started: TestDaemon[] = [];
  let dir: string;
  let deadEtcd: string;
  let main: TestDaemon;
  /** At most 2 tables and 1 watcher. */
  let tiny: TestDaemon;
  /** Keeps 5 events of history per table. */
  let bounded: TestDaemon;
  /** A watcher may fall 4 messages behind. */
  let slow: TestDaemon;
  /** The smallest memory budget. */
  let budget: TestDaemon;
  /** On an etcd that is not there. */
  let storeDown: TestDaemon;
  let auth: TestDaemon;
  let broken: TestDaemon;
  const WRITE_ALPHA = "write-alpha-0123456789abcdef";

  async function daemon(opts: Parameters<typeof startTestDaemon>[0]): Promise<TestDaemon> {
    const d = await startTestDaemon({ ...opts, http: true });
    started.push(d);
    return d;
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "web-reasons-"));
    writeFileSync(join(dir, "tokens"), `write ${WRITE_ALPHA} alpha\n`);
    deadEtcd = `http://127.0.0.1:${await deadPort()}`;
    main = await daemon({});
    tiny = await daemon({ config: { maxTables: 2, maxWatchers: 1 } });
    bounded = await daemon({ config: { watchHistory: 5 } });
    slow = await daemon({ config: { watchQueue: 4, metricsListen: "127.0.0.1:0" } });
    budget = await daemon({ config: { memoryBudget: 16 * MIB } });
    storeDown = await daemon({ config: { store: "etcd", etcdEndpoints: [deadEtcd] } });
    auth = await daemon({ config: { authTokensFile: join(dir, "tokens") } });
    broken = await daemon({ store: new BrokenStore({ defaultMaxSessions: 10, maxTables: 10, watchHistory: 100 }) });
  });
  after(async () => {
    for (const d of started.splice(0)) await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  let tables = 0;
  /** A new table of `d` holding `max` sessions at most. */
  async function newTable(d: TestDaemon, max: number): Promise<string> {
    const table = `reasons-${++tables}`;
    expect((await post(d.daemon.httpUrl!, "CreateTable", { table, maxSessions: max })).status).to.equal(200);
    return table;
  }

  /** A table of limit 2 holding s1 (/p/s1) and s2 (/p/s2); s1's revision and the table now. */
  async function seeded(d: TestDaemon): Promise<{ table: string; s1: { revision: string; tableUid: string } }> {
    const base = d.daemon.httpUrl!;
    const table = await newTable(d, 2);
    const s1 = (await post(base, "Register", { table, session: { id: "s1", projectPath: "/p/s1" } })).json.session;
    await post(base, "Register", { table, session: { id: "s2", projectPath: "/p/s2" } });
    return { table, s1: s1 as { revision: string; tableUid: string } };
  }

  async function tableNow(d: TestDaemon, table: string): Promise<{ revision: string; tableUid: string }> {
    return (await post(d.daemon.httpUrl!, "GetTable", { table })).json.table as { revision: string; tableUid: string };
  }

  /** A unary call that must fail, with what gRPC must answer to the same request. */
  async function unary(d: TestDaemon, method: string, body: JsonValue, metadata: Refusal["metadata"], headers = {}): Promise<Refusal> {
    const res = await post(d.daemon.httpUrl!, method, body, headers);
    expect(res.status, JSON.stringify(res.json)).to.not.equal(200);
    const schema = SessionRegistry.methods.find((m) => m.name === method)!.input;
    return { error: res.json, metadata, ...(Object.keys(headers).length === 0 ? { grpc: { d, method, schema, body } } : {}) };
  }

  /** A Watch that must end with an error, in its end-of-stream message. */
  async function watchEnd(d: TestDaemon, body: unknown, metadata: Refusal["metadata"]): Promise<Refusal> {
    const { end } = await watchMessages(d.daemon.httpUrl!, body, Infinity);
    const error = (end as { error?: ErrorJson } | undefined)?.error;
    expect(error, "the Watch ended without an error").to.not.equal(undefined);
    return { error: error!, metadata };
  }

  const cases: Record<string, () => Promise<Refusal>> = {
    INVALID_ARGUMENT: () =>
      unary(main, "Register", { table: "-bad", session: { id: "a b", name: "bad\nname", projectPath: "relative" } }, {}),
    TABLE_NOT_FOUND: () => unary(main, "GetTable", { table: "missing" }, { table: "missing" }),
    SESSION_NOT_FOUND: async () => {
      const { table } = await seeded(main);
      return unary(main, "Lookup", { table, id: "ghost" }, { table, session_id: "ghost" });
    },
    TABLE_EXISTS: async () => {
      const table = await newTable(main, 2);
      return unary(main, "CreateTable", { table, maxSessions: 3 }, { table, max_sessions: "2" });
    },
    SESSION_EXISTS: async () => {
      const { table } = await seeded(main);
      await post(main.daemon.httpUrl!, "Remove", { table, id: "s2" });
      return unary(main, "Register", { table, session: { id: "s1", projectPath: "/other" } }, { table, session_id: "s1" });
    },
    PROJECT_ALREADY_OPEN: async () => {
      const { table } = await seeded(main);
      const body = { table, session: { id: "s2", projectPath: "/p/s1/" }, updateMask: "projectPath" };
      return unary(main, "Update", body, { table, session_id: "s1", project_path: "/p/s1" });
    },
    SESSION_LIMIT_REACHED: async () => {
      const { table } = await seeded(main);
      return unary(main, "Register", { table, session: { id: "s3", projectPath: "/p/s3" } }, { table, current: "2", max: "2" });
    },
    TABLE_LIMIT_REACHED: async () => {
      await newTable(tiny, 1); // with default, the daemon's 2 tables
      return unary(tiny, "CreateTable", { table: "one-too-many", maxSessions: 1 }, { current: "2", max: "2" });
    },
    TABLE_NOT_EMPTY: async () => {
      const { table } = await seeded(main);
      return unary(main, "DeleteTable", { table }, { table, session_count: "2" });
    },
    REVISION_MISMATCH: async () => {
      const { table, s1 } = await seeded(main);
      const body = { table, id: "s1", expectedRevision: String(BigInt(s1.revision) + 1000n) };
      return unary(main, "Remove", body, { table, session_id: "s1", current_revision: s1.revision });
    },
    TABLE_UID_MISMATCH: async () => {
      const { table, s1 } = await seeded(main);
      const now = await tableNow(main, table);
      const body = { table, id: "s1", expectedRevision: s1.revision, tableUid: "another-history" };
      return unary(main, "Remove", body, { table, table_uid: now.tableUid, current_revision: now.revision });
    },
    REVISION_COMPACTED: async () => {
      const table = await newTable(bounded, 10);
      const base = bounded.daemon.httpUrl!;
      const first = (await post(base, "Register", { table, session: { id: "c0", projectPath: "/c/0" } })).json.session as {
        revision: string;
      };
      for (let i = 1; i < 10; i++) await post(base, "Register", { table, session: { id: `c${i}`, projectPath: `/c/${i}` } });
      const refusal = await watchEnd(bounded, { table, startRevision: first.revision }, { table, compact_revision: ANY });
      // The 5 newest of 10 writes are kept: the oldest start still served is the 6th write's.
      expect(Number(refusal.error.details![0]!.debug!.metadata!.compact_revision)).to.equal(Number(first.revision) + 5);
      return refusal;
    },
    FUTURE_REVISION: async () => {
      const { table } = await seeded(main);
      const now = await tableNow(main, table);
      const body = { table, startRevision: String(BigInt(now.revision) + 1000n) };
      return watchEnd(main, body, { table, table_uid: now.tableUid, current_revision: now.revision });
    },
    WATCHER_TOO_SLOW: async () => {
      const base = slow.daemon.httpUrl!;
      const watch = stalledWatch(Number(new URL(base).port), {});
      const metadata = { a: "x".repeat(4000), b: "y".repeat(4000), c: "z".repeat(4000) };
      // Until the daemon gives up on the watcher: the socket's buffers fill, then its queue of 4.
      for (let i = 0; i < 2000; i++) {
        await post(base, "Register", { session: { id: `w${i}`, projectPath: `/w/${i}`, metadata } });
        await post(base, "Remove", { id: `w${i}` });
        if (i % 25 === 24 && /"WATCHER_TOO_SLOW"/.test(await (await fetch(`http://${slow.daemon.metricsAddress!}/metrics`)).text())) break;
      }
      const { messages, end } = await watch.drain();
      const delivered = messages.filter((m) => m.event !== undefined);
      const last = (delivered.at(-1)?.revision as string | undefined) ?? "0";
      const resume = end.error!.details![0]!.debug!.metadata!.resume_revision!;
      // Nothing lost: resuming at resume_revision starts with the first event this watcher did not get.
      expect(BigInt(resume)).to.equal(BigInt(last) + 1n);
      const resumed = await watchMessages(base, { startRevision: resume }, 1);
      expect(resumed.messages[0]).to.include({ revision: resume }).and.to.have.property("event");
      return { error: end.error!, metadata: { table: "default", resume_revision: resume } };
    },
    WATCHER_LIMIT_REACHED: async () => {
      // The daemon's one watcher, held open until the second is refused.
      let release!: () => void;
      const held = new Promise<void>((resolve) => (release = resolve));
      let opened!: () => void;
      const open = new Promise<void>((resolve) => (opened = resolve));
      const first = watchMessages(tiny.daemon.httpUrl!, {}, 1, { received: () => (opened(), held) });
      await open;
      try {
        return await watchEnd(tiny, {}, { current: "1", max: "1" });
      } finally {
        release();
        await first.catch(() => undefined);
      }
    },
    MEMORY_BUDGET_REACHED: async () => {
      const base = budget.daemon.httpUrl!;
      const table = await newTable(budget, 100_000);
      const metadata = Object.fromEntries([0, 1, 2, 3].map((k) => [`k${k}`, "x".repeat(4000)]));
      for (let n = 0; n < 5000; n++) {
        const body = { table, session: { id: `s${n}`, projectPath: `/s/${n}`, metadata } };
        const res = await post(base, "Register", body);
        // The sessions' share of the budget is 3/4 of it.
        if (res.status !== 200) return unary(budget, "Register", body, { used_bytes: /^\d+$/, budget_bytes: String((16 * MIB * 3) / 4) });
      }
      throw new Error("the budget never refused a session");
    },
    SHUTTING_DOWN: async () => {
      const d = await daemon({});
      let stopping: Promise<void> | undefined;
      const { end } = await watchMessages(d.daemon.httpUrl!, {}, Infinity, {
        received: () => {
          stopping ??= d.stop();
          return Promise.resolve();
        },
      });
      await stopping;
      return { error: (end as { error: ErrorJson }).error, metadata: {} };
    },
    STORE_UNAVAILABLE: () => unary(storeDown, "GetTable", {}, { store: "etcd", endpoints: deadEtcd }),
    UNAUTHENTICATED: () => unary(auth, "List", {}, {}, { authorization: "Bearer not-a-token-at-all-000" }),
    PERMISSION_DENIED: () =>
      unary(
        auth,
        "Register",
        { session: { id: "x", projectPath: "/x" } },
        { method: "Register", role: "write", table: "default" },
        { authorization: `Bearer ${WRITE_ALPHA}` },
      ),
    INTERNAL: async () => {
      const refusal = await unary(broken, "ListTables", {}, {});
      expect(refusal.error.message).to.not.match(/secret|store\.ts/);
      return refusal;
    },
  };

  it("has a case for every reason of the proto's error table, and no other", () => {
    expect(Object.keys(cases).sort()).to.deep.equal(
      protoErrorTable()
        .map((r) => r.reason)
        .sort(),
    );
  });

  for (const row of protoErrorTable()) {
    it(`answers ${row.reason} with code ${row.code.toLowerCase()} and the ErrorInfo metadata the contract names`, async () => {
      const make = cases[row.reason];
      if (make === undefined) throw new Error(`no case makes ${row.reason}`);
      const { error, metadata, grpc } = await make();
      expect(error.code).to.equal(row.code.toLowerCase());
      expect(error.message).to.be.a("string").and.not.equal("");
      const infos = (error.details ?? []).filter((x) => x.type === "google.rpc.ErrorInfo");
      expect(infos, JSON.stringify(error)).to.have.length(1);
      // What a client without `debug` decodes: the binary message, base64 in `value`.
      const info = fromBinary(ErrorInfoSchema, Buffer.from(infos[0]!.value, "base64"));
      expect(info.reason).to.equal(row.reason).and.to.equal(infos[0]!.debug?.reason);
      expect(info.domain).to.equal(ERROR_DOMAIN);
      expect(Object.keys(info.metadata).sort()).to.deep.equal(row.metadata);
      expect(info.metadata).to.deep.equal(infos[0]!.debug?.metadata ?? {});
      for (const [key, want] of Object.entries(metadata)) {
        if (typeof want === "string") expect(info.metadata[key], key).to.equal(want);
        else expect(info.metadata[key], key).to.match(want);
      }
      const badRequest = (error.details ?? []).find((x) => x.type === "google.rpc.BadRequest");
      const violations =
        badRequest === undefined ? [] : fromBinary(BadRequestSchema, Buffer.from(badRequest.value, "base64")).fieldViolations;
      if (row.reason === "INVALID_ARGUMENT") {
        expect(violations.map((v) => v.field).sort()).to.deep.equal(["session.id", "session.name", "session.project_path", "table"]);
      }
      if (grpc !== undefined) {
        const bytes = toBinary(grpc.schema, fromJson(grpc.schema, grpc.body));
        const wire = wireDetails((await callBytes(grpc.d.rawClient().client, grpc.method, bytes)).metadata);
        // An outage's message tells when the daemon tries the store again, which moves between the two calls.
        const outage = /; after repeated failures .*$/;
        expect(error.message.replace(outage, "")).to.equal(wire.status.message.replace(outage, ""));
        expect(info.metadata).to.deep.equal(Object.fromEntries(wire.errorInfos[0]!.metadata));
        expect(violations.map((v) => ({ field: v.field, description: v.description }))).to.deep.equal(
          wire.badRequests[0]?.fieldViolations.map((v) => ({ field: v.field, description: v.description })) ?? [],
        );
      }
    });
  }
});
