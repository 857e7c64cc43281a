/**
 * The Watch and KeepAlive handlers over the wire, with the generated stubs:
 * statuses and their details, the order of messages, the watcher limit,
 * release of every watch however it ends, slow watchers and shutdown.
 *
 * Waits are bounded and wait for a condition, never for a time; nothing
 * asserts a duration.
 */
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";

import { expect } from "chai";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import {
  EventType,
  SessionRegistryClient as GeneratedClient,
  Session,
  type KeepAliveRequest,
  type KeepAliveResponse,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import type { DaemonConfig } from "../../src/daemon/config.js";
import { GatedStore } from "../helpers/gated-store.js";
import { eventually, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { suiteEtcd, uniquePrefix } from "../helpers/etcd.js";
import { rawError, wireDetails, type RawRegistry } from "../helpers/raw.js";
import { RecordedWatch as Watch } from "../helpers/watch.js";

const SERVICE = "/sessionregistry.v1.SessionRegistry";

/** A session for a request: the given fields, the rest at their zero values. */
function session(fields: Partial<Session>): Session {
  return { ...Session.fromPartial({}), ...fields };
}

function keepAlive(client: GeneratedClient, req: KeepAliveRequest): Promise<KeepAliveResponse> {
  return new Promise((resolve, reject) => client.keepAlive(req, (err, res) => (err ? reject(err) : resolve(res))));
}

/** Forwards TCP connections to a port; cut() drops them all at once, as a crashed client or a broken network would. */
class TcpProxy {
  private readonly sockets = new Set<Socket>();

  private constructor(
    private readonly server: Server,
    readonly address: string,
    targetPort: number,
  ) {
    server.on("connection", (downstream) => {
      const upstream = connect(targetPort, "127.0.0.1");
      for (const [a, b] of [
        [downstream, upstream],
        [upstream, downstream],
      ] as const) {
        this.sockets.add(a);
        a.pipe(b);
        a.on("error", () => b.destroy());
        a.on("close", () => {
          this.sockets.delete(a);
          b.destroy();
        });
      }
    });
  }

  static async start(targetPort: number): Promise<TcpProxy> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return new TcpProxy(server, `127.0.0.1:${(server.address() as AddressInfo).port}`, targetPort);
  }

  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** The status a stream ended with, checked to carry its google.rpc.Status; returns the ErrorInfo. */
function expectStatus(err: ServiceError | undefined, code: status, reason: string): Map<string, string> {
  expect(err, "the stream should have ended with an error status").to.not.equal(undefined);
  expect(err!.code, err!.details).to.equal(code);
  const details = wireDetails(err!.metadata);
  expect(details.status.code).to.equal(code);
  expect(details.status.message).to.equal(err!.details);
  expect(details.errorInfos).to.have.length(1);
  expect(details.errorInfos[0]!.reason).to.equal(reason);
  expect(details.errorInfos[0]!.domain).to.equal("sessionregistry.v1");
  return details.errorInfos[0]!.metadata;
}

/**
 * The daemon's bounds on watchers, the watcher limit and the queue of a slow
 * watcher, on the store `storeConfig` selects: the etcd store feeds the
 * queue from etcd's own watch, and resumes from etcd's revisions.
 */
function watchBounds(storeName: string, storeConfig: () => Partial<DaemonConfig>): void {
  describe(`with a watcher limit of 3 (${storeName} store)`, () => {
    let d: TestDaemon;
    let client: GeneratedClient;

    before(async () => {
      d = await startTestDaemon({ config: { ...storeConfig(), maxWatchers: 3 } });
      client = d.rawClient().client;
    });
    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
    });

    it("refuses a 4th watch with RESOURCE_EXHAUSTED WATCHER_LIMIT_REACHED, and takes one after a cancel", async () => {
      const open = [new Watch(client, ""), new Watch(client, ""), new Watch(client, "")];
      try {
        for (const w of open) await w.until(() => w.messages.length >= 1, "the snapshot");
        const fourth = new Watch(client, "");
        const metadata = expectStatus(await fourth.ending(), status.RESOURCE_EXHAUSTED, "WATCHER_LIMIT_REACHED");
        expect(metadata.get("max")).to.equal("3");
        expect(metadata.get("current")).to.equal("3");

        open.shift()!.call.cancel();
        await eventually(() => d.daemon.registry.activeWatchers === 2, "the cancelled watch to be released");
        const fifth = new Watch(client, "");
        open.push(fifth);
        await fifth.until(() => fifth.messages.length >= 1, "the snapshot");
        expect(d.daemon.registry.activeWatchers).to.equal(3);
      } finally {
        for (const w of open) w.call.cancel();
        await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to be released");
      }
    });
  });

  describe(`with a watch queue of 4 (${storeName} store)`, () => {
    let d: TestDaemon;
    let raw: RawRegistry;
    let reader: GeneratedClient;

    before(async () => {
      d = await startTestDaemon({ config: { ...storeConfig(), watchQueue: 4 } });
      raw = d.rawClient();
      // The slow reader gets a connection of its own, so that its full flow-control window blocks no write.
      reader = new GeneratedClient(d.address, credentials.createInsecure());
    });
    after(async () => {
      /* eslint-disable @typescript-eslint/no-unnecessary-condition -- each is unset if before() failed */
      reader?.close();
      await d?.stop();
      /* eslint-enable @typescript-eslint/no-unnecessary-condition */
    });

    it("ends a watcher that stops reading with WATCHER_TOO_SLOW, from whose resume_revision a new watch continues exactly", async () => {
      const table = uniqueName("slow");
      await raw.createTable({ table, maxSessions: 100 });
      // About 16 KB per message, the most metadata a session may carry: HTTP/2 flow control and the client's buffer fill up after a few dozen.
      const big = (n: number) => new Map(Array.from({ length: 4 }, (_, i) => [`k${i}`, `${n}:${i}:`.padEnd(4000, "x")]));
      await raw.register({ requestId: "", table, session: session({ id: "big", projectPath: "/big", metadata: big(0) }) });

      const slow = new Watch(reader, table);
      await slow.until(() => slow.messages.length >= 1, "the snapshot");
      slow.call.pause();

      const written: number[] = [];
      for (let n = 1; d.daemon.registry.activeWatchers > 0; n++) {
        if (n > 1000) throw new Error("the watcher was never found too slow");
        const { session: s } = await raw.update({
          requestId: "",
          table,
          session: session({ id: "big", metadata: big(n) }),
          updateMask: ["metadata"],
          expectedRevision: 0,
        });
        written.push(s!.revision);
      }
      // Two more writes, which the ended watcher must not get.
      for (const n of [-1, -2]) {
        const { session: s } = await raw.update({
          requestId: "",
          table,
          session: session({ id: "big", metadata: big(n) }),
          updateMask: ["metadata"],
          expectedRevision: 0,
        });
        written.push(s!.revision);
      }

      slow.call.resume();
      const metadata = expectStatus(await slow.ending(), status.RESOURCE_EXHAUSTED, "WATCHER_TOO_SLOW");
      expect(metadata.get("table")).to.equal(table);
      const resume = Number(metadata.get("resume_revision"));
      const delivered = slow.events.map((e) => e.revision);
      // What the slow watcher got is a prefix of the writes, and resume_revision is the first write it missed.
      expect(delivered).to.deep.equal(written.slice(0, delivered.length));
      expect(delivered.length).to.be.lessThan(written.length - 2);
      expect(resume).to.equal(written[delivered.length]);

      const resumed = new Watch(reader, table, resume);
      try {
        await resumed.until(() => resumed.events.length >= written.length - delivered.length, "the rest of the writes");
        expect(resumed.messages.every((m) => m.kind?.$case === "event")).to.equal(true);
        expect(resumed.events.map((e) => e.revision)).to.deep.equal(written.slice(delivered.length));
      } finally {
        resumed.call.cancel();
      }
      await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to be released");
    });

    it("replays a history far longer than the queue without finding the watcher too slow", async () => {
      const table = uniqueName("replay");
      await raw.createTable({ table, maxSessions: 100 });
      const { session: first } = await raw.register({ requestId: "", table, session: session({ id: "r", projectPath: "/r" }) });
      for (let n = 0; n < 200; n++) {
        await raw.update({ requestId: "", table, session: session({ id: "r", name: `n${n}` }), updateMask: ["name"], expectedRevision: 0 });
      }
      const w = new Watch(reader, table, first!.revision);
      try {
        await w.until(() => w.events.length >= 201, "the replay");
        expect(w.events[0]!.revision).to.equal(first!.revision);
        expect(w.ended).to.equal(false);
      } finally {
        w.call.cancel();
      }
      await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to be released");
    });
  });
}

describe("Watch and KeepAlive handlers", () => {
  describe("with a default daemon", () => {
    let d: TestDaemon;
    let raw: RawRegistry;
    let client: GeneratedClient;
    const watches: Watch[] = [];

    before(async () => {
      d = await startTestDaemon();
      raw = d.rawClient();
      client = raw.client;
    });
    afterEach(async () => {
      for (const w of watches.splice(0)) w.call.cancel();
      await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to be released");
    });
    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
    });

    function watch(table: string, startRevision = 0): Watch {
      const w = new Watch(client, table, startRevision);
      watches.push(w);
      return w;
    }

    async function newTable(maxSessions = 10): Promise<string> {
      const table = uniqueName("ws");
      await raw.createTable({ table, maxSessions });
      return table;
    }

    describe("KeepAlive", () => {
      it("answers an unknown id with NOT_FOUND SESSION_NOT_FOUND", async () => {
        const table = await newTable();
        const err = await rawError(keepAlive(client, { table, id: "nobody" }));
        const metadata = expectStatus(err, status.NOT_FOUND, "SESSION_NOT_FOUND");
        expect(metadata.get("session_id")).to.equal("nobody");
        expect(metadata.get("table")).to.equal(table);
      });

      it("answers a bad id with INVALID_ARGUMENT naming the field", async () => {
        const err = await rawError(keepAlive(client, { table: "", id: "" }));
        expectStatus(err, status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
        expect(wireDetails(err.metadata).badRequests[0]?.fieldViolations.map((v) => v.field)).to.deep.equal(["id"]);
      });

      it("returns a session without ttl unchanged", async () => {
        const table = await newTable();
        const { session: registered } = await raw.register({
          requestId: "",
          table,
          session: session({ id: "plain", projectPath: "/plain" }),
        });
        const { session: kept } = await keepAlive(client, { table, id: "plain" });
        expect(kept).to.deep.equal(registered);
        expect(kept!.expireTime).to.equal(undefined);
      });

      it("moves expire_time forward without changing the revision", async () => {
        const table = await newTable();
        const { session: registered } = await raw.register({
          requestId: "",
          table,
          session: session({ id: "ttl", projectPath: "/ttl", ttl: { seconds: 3600, nanos: 0 } }),
        });
        expect(registered!.expireTime).to.be.instanceOf(Date);
        // Wait for the clock to move, so that a pushed expire time must differ.
        const before = registered!.expireTime!.getTime();
        await eventually(() => Date.now() > before - 3600_000, "the clock to pass the registration");
        const { session: kept } = await keepAlive(client, { table, id: "ttl" });
        expect(kept!.expireTime!.getTime()).to.be.greaterThan(before);
        expect(kept!.revision).to.equal(registered!.revision);
        expect(kept!.updateTime).to.deep.equal(registered!.updateTime);
        const { table: after } = await raw.getTable({ table });
        expect(after!.revision).to.equal(registered!.revision);
      });
    });

    describe("Watch", () => {
      it("sends one snapshot at the table's revision first, then each write as an event at its revision", async () => {
        const table = await newTable();
        const { session: a } = await raw.register({ requestId: "", table, session: session({ id: "a", projectPath: "/a" }) });
        const w = watch(table);
        await w.until(() => w.messages.length >= 1, "the snapshot");
        const { table: atStart } = await raw.getTable({ table });
        const first = w.messages[0]!;
        expect(first.revision).to.equal(atStart!.revision);
        expect(first.kind?.$case).to.equal("snapshot");
        if (first.kind?.$case === "snapshot") expect(first.kind.value.sessions).to.deep.equal([a]);

        const { session: b } = await raw.register({ requestId: "", table, session: session({ id: "b", projectPath: "/b" }) });
        const { session: b2 } = await raw.update({
          requestId: "",
          table,
          session: session({ id: "b", name: "renamed" }),
          updateMask: ["name"],
          expectedRevision: 0,
        });
        const { session: removed } = await raw.remove({ requestId: "", table, id: "a", expectedRevision: 0, allowMissing: false });
        const { table: afterRemove } = await raw.getTable({ table });

        await w.until(() => w.events.length >= 3, "three events");
        expect(w.events.map((e) => [e.type, e.revision, e.session.id])).to.deep.equal([
          [EventType.EVENT_TYPE_REGISTERED, b!.revision, "b"],
          [EventType.EVENT_TYPE_UPDATED, b2!.revision, "b"],
          [EventType.EVENT_TYPE_REMOVED, afterRemove!.revision, "a"],
        ]);
        expect(w.events[0]!.session).to.deep.equal(b);
        expect(w.events[1]!.session).to.deep.equal(b2);
        expect(w.events[2]!.session).to.deep.equal(removed);
        expect(w.messages.filter((m) => m.kind?.$case === "snapshot")).to.have.length(1);
        expect(w.ended).to.equal(false);
      });

      it("watches the default table when table is empty", async () => {
        const w = watch("");
        await w.until(() => w.messages.length >= 1, "the snapshot");
        const { table } = await raw.getTable({ table: "default" });
        expect(w.messages[0]!.revision).to.equal(table!.revision);
      });

      it("ends a watch of an unknown table with NOT_FOUND TABLE_NOT_FOUND", async () => {
        const w = watch("no-such-table");
        const metadata = expectStatus(await w.ending(), status.NOT_FOUND, "TABLE_NOT_FOUND");
        expect(metadata.get("table")).to.equal("no-such-table");
        expect(w.messages).to.have.length(0);
      });

      it("ends a watch with a bad table name with INVALID_ARGUMENT naming the field", async () => {
        const w = watch("not a table!");
        const err = await w.ending();
        expectStatus(err, status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
        expect(wireDetails(err!.metadata).badRequests[0]?.fieldViolations.map((v) => v.field)).to.deep.equal(["table"]);
      });

      it("ends a watch whose request bytes do not parse with INVALID_ARGUMENT", async () => {
        const stream = client.makeServerStreamRequest(
          `${SERVICE}/Watch`,
          (b: Buffer) => b,
          (b: Buffer) => b,
          Buffer.from([0xff, 0xff, 0xff]),
        );
        const err = await new Promise<ServiceError>((resolve, reject) => {
          stream.on("data", () => reject(new Error("a malformed watch got a message")));
          stream.on("error", resolve);
          stream.on("end", () => reject(new Error("a malformed watch ended without an error")));
        });
        expectStatus(err, status.INVALID_ARGUMENT, "INVALID_ARGUMENT");
        expect(err.details).to.equal("malformed request: not a valid sessionregistry.v1.WatchRequest: premature EOF");
      });

      it("ends the table's watches with NOT_FOUND when the table is force-deleted", async () => {
        const table = await newTable();
        await raw.register({ requestId: "", table, session: session({ id: "x", projectPath: "/x" }) });
        const w1 = watch(table);
        const w2 = watch(table, 1);
        await w1.until(() => w1.messages.length >= 1, "the snapshot");
        await eventually(() => d.daemon.registry.activeWatchers === 2, "both watches to start");
        await raw.deleteTable({ table, force: true });
        for (const w of [w1, w2]) {
          const metadata = expectStatus(await w.ending(), status.NOT_FOUND, "TABLE_NOT_FOUND");
          expect(metadata.get("table")).to.equal(table);
        }
        await eventually(() => d.daemon.registry.activeWatchers === 0, "the watches to be released");
      });

      it("releases 50 watches over several channels when their clients cancel or their connections drop", async () => {
        const table = await newTable();
        const proxy = await TcpProxy.start(d.daemon.port);
        // Two channels straight to the daemon, whose watches are cancelled; three through
        // the proxy, whose connections are cut with the watches still open.
        const direct = Array.from({ length: 2 }, () => new GeneratedClient(d.address, credentials.createInsecure()));
        const proxied = Array.from({ length: 3 }, () => new GeneratedClient(proxy.address, credentials.createInsecure()));
        const clients = [...direct, ...proxied];
        try {
          const open: Watch[] = [];
          for (let i = 0; i < 50; i++) open.push(new Watch(clients[i % clients.length]!, table));
          for (const w of open) await w.until(() => w.messages.length >= 1, "the snapshot");
          expect(d.daemon.registry.activeWatchers).to.equal(50);
          for (const [i, w] of open.entries()) if (i % clients.length < direct.length) w.call.cancel();
          proxy.cut();
          await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to be released");
          for (const [i, w] of open.entries()) {
            if (i % clients.length >= direct.length) expect((await w.ending())?.code).to.equal(status.UNAVAILABLE);
          }
        } finally {
          for (const c of clients) c.close();
          await proxy.close();
        }
      });
    });
  });

  watchBounds("memory", () => ({}));

  describe("on an etcd store", function () {
    // Starting etcd takes a moment (an election on a fresh data dir).
    this.timeout(30_000);
    const etcd = suiteEtcd();

    watchBounds("etcd", () => ({ store: "etcd", etcdEndpoints: [etcd().endpoint], etcdPrefix: uniquePrefix() }));
  });

  describe("shutdown", () => {
    it("ends open watches at once with UNAVAILABLE SHUTTING_DOWN instead of waiting out the grace", async () => {
      const d = await startTestDaemon({ config: { shutdownGraceMs: 10_000 } });
      const client = d.rawClient().client;
      const watches = [new Watch(client, ""), new Watch(client, "", 1)];
      await watches[0]!.until(() => watches[0]!.messages.length >= 1, "the snapshot");
      await eventually(() => d.daemon.registry.activeWatchers === 2, "both watches to start");

      // The clients stay open until the daemon is down: the watches must end from the server's side.
      const down = d.daemon.shutdown();
      for (const w of watches) {
        const metadata = expectStatus(await w.ending(), status.UNAVAILABLE, "SHUTTING_DOWN");
        expect(metadata.size).to.equal(0);
      }
      await down;
      expect(d.daemon.registry.activeWatchers).to.equal(0);
      await d.stop();
    });

    it("lets a unary call that is running finish during the grace while watches end at once", async () => {
      const store = new GatedStore({ defaultMaxSessions: 10, maxTables: 10, watchHistory: 100 });
      const d = await startTestDaemon({ config: { shutdownGraceMs: 10_000 }, store });
      const raw = d.rawClient();
      const w = new Watch(raw.client, "");
      await w.until(() => w.messages.length >= 1, "the snapshot");
      const entered = store.hold();
      const registered = raw.register({ requestId: "", table: "", session: session({ id: "late", projectPath: "/late" }) });
      await entered;

      const down = d.daemon.shutdown();
      expectStatus(await w.ending(), status.UNAVAILABLE, "SHUTTING_DOWN");
      // The Register is still inside the store; the store is still open, so it completes.
      store.release();
      const { session: late } = await registered;
      expect(late!.id).to.equal("late");
      await down;
      expect(d.daemon.registry.activeWatchers).to.equal(0);
      await d.stop();
    });
  });
});
