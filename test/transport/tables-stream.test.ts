/**
 * How a WatchTables stream meets a reader that pushes back, through
 * RegistryCalls over a memory store, with a WatchCall whose write() says
 * when the wire is full: changes coalesce into one message of the latest
 * states, nothing is lost, nothing is queued per change, and the watcher
 * is never ended as too slow. (The wire itself is in the conformance
 * suite and test/transport/auth.test.ts.)
 */
import { expect } from "chai";

import { shuttingDown } from "../../src/core/errors.js";
import { Registry } from "../../src/core/registry.js";
import { silentLogger } from "../../src/daemon/logger.js";
import type { WatchTablesResponse } from "../../src/gen/sessionregistry/v1/session_registry.js";
import { MemoryStore } from "../../src/store/memory/store.js";
import { RegistryCalls } from "../../src/transport/calls.js";
import type { StatusSpec } from "../../src/transport/status.js";
import type { WatchCall } from "../../src/transport/watch-stream.js";

/** A WatchCall whose wire is full while `full` is set; drain() empties it. */
class FakeCall implements WatchCall<WatchTablesResponse> {
  readonly request = {};
  readonly headers = { get: () => [] };
  readonly sent: WatchTablesResponse[] = [];
  failed: StatusSpec | undefined;
  full = false;
  private handlers: { gone: () => void; drain: () => void } | undefined;

  peer = () => "test";
  isCancelled = () => false;
  isClosed = () => this.failed !== undefined;
  write(message: WatchTablesResponse): boolean {
    this.sent.push(message);
    return !this.full;
  }
  sendHeaders(): void {
    // Headers go with the snapshot here.
  }
  fail(error: StatusSpec): void {
    this.failed = error;
  }
  listen(handlers: { gone: () => void; drain: () => void }): () => void {
    this.handlers = handlers;
    return () => (this.handlers = undefined);
  }
  drain(): void {
    this.full = false;
    this.handlers?.drain();
  }
  leave(): void {
    this.handlers?.gone();
  }
}

const session = (id: string) => ({ id, name: "", projectPath: `/p/${id}`, metadata: new Map<string, string>(), ttl: undefined });
/** Past the I/O turn in which a change was held. */
const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("WatchTables streams", () => {
  let store: MemoryStore;
  let registry: Registry;
  let calls: RegistryCalls;

  beforeEach(async () => {
    store = new MemoryStore({ defaultMaxSessions: 100, maxTables: 100, watchHistory: 100 });
    registry = new Registry(store, { maxWatchers: 2 });
    calls = new RegistryCalls(registry, silentLogger);
    await registry.createTable({ table: "a", maxSessions: 0 });
    await registry.createTable({ table: "b", maxSessions: 0 });
  });
  afterEach(() => store.close());

  it("sends the changes of one I/O turn as one message, tables in name order", async () => {
    const call = new FakeCall();
    calls.watchTables(call);
    await nextTurn();
    expect(call.sent).to.have.length(1);
    expect(call.sent[0]!.tables.map((t) => t.name)).to.deep.equal(["a", "b"]);
    await Promise.all([registry.register({ table: "b", session: session("1") }), registry.register({ table: "a", session: session("2") })]);
    await nextTurn();
    expect(call.sent).to.have.length(2);
    expect(call.sent[1]).to.deep.include({ snapshot: false, deletedTables: [] });
    expect(call.sent[1]!.tables.map((t) => [t.name, t.sessionCount])).to.deep.equal([
      ["a", 1],
      ["b", 1],
    ]);
    call.leave();
  });

  it("holds only the latest state of each table while the wire is full, and sends it all at the drain", async () => {
    const call = new FakeCall();
    calls.watchTables(call);
    await nextTurn();
    call.full = true;
    await registry.register({ table: "a", session: session("first") });
    await nextTurn();
    expect(call.sent).to.have.length(2); // this write found the wire full
    for (let i = 0; i < 150; i++) {
      await registry.register({ table: "a", session: session(`s${i}`) });
      if (i % 2 === 0) await registry.remove({ table: "a", id: `s${i}`, expectedRevision: 0, allowMissing: false });
    }
    await registry.createTable({ table: "c", maxSessions: 0 });
    await registry.createTable({ table: "gone-before-sent", maxSessions: 0 });
    await registry.deleteTable({ table: "gone-before-sent", force: false });
    await registry.deleteTable({ table: "b", force: false });
    await nextTurn();
    expect(call.sent).to.have.length(2);

    call.drain();
    expect(call.sent).to.have.length(3);
    const last = call.sent[2]!;
    const a = await registry.getTable({ table: "a" });
    expect(last.tables.map((t) => [t.name, t.sessionCount, Number(t.revision)])).to.deep.equal([
      ["a", 76, a.revision],
      ["c", 0, (await registry.getTable({ table: "c" })).revision],
    ]);
    // A table the watcher never held is not reported deleted.
    expect(last.deletedTables).to.deep.equal(["b"]);
    expect(call.failed).to.equal(undefined);
    call.leave();
  });

  it("counts toward the watcher limit and gives its slot back when the client leaves", async () => {
    const first = new FakeCall();
    const second = new FakeCall();
    calls.watchTables(first);
    calls.watchTables(second);
    await nextTurn();
    const third = new FakeCall();
    calls.watchTables(third);
    await nextTurn();
    expect(third.failed).to.deep.include({ reason: "WATCHER_LIMIT_REACHED" });
    first.leave();
    expect(registry.activeWatchers).to.equal(1);
    second.leave();
    expect(registry.activeWatchers).to.equal(0);
    expect(calls.openWatches).to.equal(0);
  });

  it("ends every tables watch at shutdown, and one that starts after", async () => {
    const call = new FakeCall();
    calls.watchTables(call);
    await nextTurn();
    calls.endAllWatches(shuttingDown());
    expect(call.failed).to.deep.include({ reason: "SHUTTING_DOWN" });
    const late = new FakeCall();
    calls.watchTables(late);
    expect(late.failed).to.deep.include({ reason: "SHUTTING_DOWN" });
    expect(registry.activeWatchers).to.equal(0);
  });
});
