/**
 * SessionRegistryClient.watchTables against a real daemon: the snapshot,
 * each change as the whole list plus what changed, clean ends, typed
 * errors, and with autoResume a new snapshot after a restart that lists
 * what went meanwhile as deleted.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { SessionRegistryClient, type TablesUpdate, UnauthenticatedError, WatcherLimitReachedError } from "@session-registry/client";

import { eventually, expectError, restartableDaemons, startTestDaemon, type TestDaemon } from "../../../test/helpers/daemon.js";

/** The next item; fails if the stream ends first. */
async function next(it: AsyncIterator<TablesUpdate>): Promise<TablesUpdate> {
  const r = await it.next();
  if (r.done === true) throw new Error("the tables watch ended");
  return r.value;
}

const counts = (u: TablesUpdate) => u.tables.map((t) => [t.name, t.sessionCount]);

describe("SessionRegistryClient.watchTables (SDK)", () => {
  let d: TestDaemon;
  let client: SessionRegistryClient;
  before(async () => {
    d = await startTestDaemon({ config: { maxWatchers: 2 } });
    client = d.client();
  });
  after(async () => {
    await d.stop();
  });
  afterEach(async () => {
    await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to end", 5_000);
  });

  it("yields the snapshot, then the whole list after each change with what it changed; break cancels the call", async () => {
    await client.createTable({ table: "sdk-a", maxSessions: 2 });
    for await (const first of client.watchTables()) {
      expect(first).to.deep.include({ snapshot: true, deleted: [] });
      expect(counts(first)).to.deep.equal([
        ["default", 0],
        ["sdk-a", 0],
      ]);
      expect(first.changed).to.deep.equal(first.tables);
      break;
    }
    const stream = client.watchTables();
    const it = stream[Symbol.asyncIterator]();
    await next(it);
    await client.register({ projectPath: "/a" }, { table: "sdk-a" });
    const registered = await next(it);
    expect(registered).to.deep.include({ snapshot: false, deleted: [] });
    expect(registered.changed.map((t) => [t.name, t.sessionCount])).to.deep.equal([["sdk-a", 1]]);
    expect(counts(registered)).to.deep.equal([
      ["default", 0],
      ["sdk-a", 1],
    ]);
    await client.deleteTable("sdk-a", { force: true });
    const deleted = await next(it);
    expect(deleted).to.deep.include({ changed: [], deleted: ["sdk-a"] });
    expect(counts(deleted)).to.deep.equal([["default", 0]]);
    stream.close();
    expect((await it.next()).done).to.equal(true);
  });

  it("throws the daemon's typed error without autoResume, and waits out the watcher limit with it", async () => {
    const holders = [client.watchTables(), client.watchTables()];
    const its = holders.map((h) => h[Symbol.asyncIterator]());
    for (const it of its) await next(it);
    await expectError(next(client.watchTables()[Symbol.asyncIterator]()), WatcherLimitReachedError);
    const waiting = client.watchTables({ autoResume: true, backoff: { initialMs: 20, maxMs: 50 } });
    const first = next(waiting[Symbol.asyncIterator]());
    holders[0]!.close();
    expect((await first).snapshot).to.equal(true);
    waiting.close();
    holders[1]!.close();
  });

  it("close() on the client ends its tables watches", async () => {
    const c = d.client();
    const it = c.watchTables()[Symbol.asyncIterator]();
    await next(it);
    c.close();
    expect((await it.next()).done).to.equal(true);
  });

  describe("on a daemon with tokens", () => {
    it("throws UnauthenticatedError without a token", async () => {
      const dir = mkdtempSync(join(tmpdir(), "sdk-tables-"));
      writeFileSync(join(dir, "tokens"), "read sdk-tables-reader-0123456789\n");
      const guarded = await startTestDaemon({ config: { authTokensFile: join(dir, "tokens") } });
      try {
        await expectError(next(guarded.client().watchTables({ autoResume: true })[Symbol.asyncIterator]()), UnauthenticatedError);
      } finally {
        await guarded.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe("autoResume across a daemon restart on the same port", () => {
    const daemons = restartableDaemons();

    it("reconnects and yields a new snapshot that lists the tables gone meanwhile as deleted", async () => {
      const first = await daemons.start();
      const c = daemons.client(first.address);
      await c.createTable({ table: "before-restart" });
      const told: string[] = [];
      const stream = c.watchTables({
        autoResume: true,
        backoff: { initialMs: 20, maxMs: 200 },
        onReconnect: (e) => told.push(e.kind === "reconnecting" ? `reconnecting ${e.error?.reason}` : `resumed ${e.revision}`),
      });
      try {
        const it = stream[Symbol.asyncIterator]();
        expect((await next(it)).tables.map((t) => t.name)).to.deep.equal(["before-restart", "default"]);
        await first.shutdown();
        await daemons.start(first.port);
        const again = await next(it);
        expect(again).to.deep.include({ snapshot: true, deleted: ["before-restart"] });
        expect(again.tables.map((t) => t.name)).to.deep.equal(["default"]);
        expect(told).to.deep.equal(["reconnecting SHUTTING_DOWN", "resumed 0"]);
      } finally {
        stream.close();
      }
    });
  });
});
