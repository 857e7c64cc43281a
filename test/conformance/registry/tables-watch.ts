/**
 * WatchTables: a snapshot of every table, then each table's latest state as
 * it changes (created, a new count, deleted, made again), never one older
 * than a state already shown, through any interleaving of writes.
 */
import { expect } from "chai";

import { RecordedTables } from "../../helpers/watch.js";
import type { RegistryFixture } from "./fixture.js";

export function tablesWatchTests(fx: RegistryFixture): void {
  describe("tables watch", () => {
    const open: RecordedTables[] = [];
    const watchTables = () => {
      const w = new RecordedTables(fx.raw.client);
      open.push(w);
      return w;
    };
    afterEach(() => {
      for (const w of open.splice(0)) w.cancel();
    });

    it("starts with one snapshot of every table with its count, in name order, as ListTables has them", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 2);
      const w = watchTables();
      await w.until((x) => x.messages.length >= 1, "the snapshot");
      const first = w.messages[0]!;
      expect(first.snapshot).to.equal(true);
      expect(first.deletedTables).to.deep.equal([]);
      const listed = await fx.client.listTables();
      // Other tests' tables may change meanwhile; this test's table and the order may not.
      const names = first.tables.map((t) => t.name);
      expect(names).to.deep.equal([...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))));
      expect(names).to.include.members(["default", table]);
      const mine = first.tables.find((t) => t.name === table)!;
      const listedMine = listed.find((t) => t.name === table)!;
      expect(mine.sessionCount).to.equal(2);
      expect(mine).to.deep.equal(listedMine);
    });

    it("shows a table created, its sessions registered, removed and the table deleted", async () => {
      const w = watchTables();
      await w.until((x) => x.messages.length >= 1, "the snapshot");
      const table = await fx.newTable(5);
      await w.until((x) => x.count(table) === 0, "the new table");
      const sessions = await fx.fill(table, 3);
      await w.until((x) => x.count(table) === 3, "three sessions");
      expect(w.tables.get(table)!.revision).to.equal(sessions[2]!.revision);
      await fx.client.remove(sessions[0]!.id, { table });
      await w.until((x) => x.count(table) === 2, "two sessions");
      await fx.client.deleteTable(table, { force: true });
      await w.until((x) => !x.tables.has(table), "the table gone");
      expect(w.messages.some((m) => m.deletedTables.includes(table))).to.equal(true);
      expect(w.broken).to.deep.equal([]);
    });

    it("shows the count drop when a session's ttl runs out", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "stays", projectPath: "/stays" }, { table });
      await fx.client.register({ id: "expires", projectPath: "/expires", ttlMs: 1000 }, { table });
      const w = watchTables();
      await w.until((x) => x.count(table) === 2, "both sessions");
      await w.until((x) => x.count(table) === 1, "the expiry");
      expect(w.broken).to.deep.equal([]);
    });

    it("shows a table deleted and made again with its new table_uid", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      const w = watchTables();
      await w.until((x) => x.count(table) === 1, "the table in the snapshot");
      const before = w.tables.get(table)!.tableUid;
      await fx.client.deleteTable(table, { force: true });
      const again = await fx.client.createTable({ table, maxSessions: 3 });
      await w.until((x) => x.tables.get(table)?.tableUid === again.table.tableUid, "the table made again");
      expect(again.table.tableUid).not.to.equal(before);
      expect(w.tables.get(table)).to.deep.include({ sessionCount: 0, maxSessions: 3 });
      expect(w.broken).to.deep.equal([]);
    });

    it("ends at the table's true count after concurrent writes, never going back on the way", async () => {
      const table = await fx.newTable(40);
      const w = watchTables();
      await w.until((x) => x.count(table) === 0, "the table in the snapshot");
      const registered = await Promise.all(
        Array.from({ length: 30 }, (_, i) => fx.client.register({ id: `c${i}`, projectPath: `/c/${i}` }, { table })),
      );
      await Promise.all(registered.slice(0, 12).map((s) => fx.client.remove(s.id, { table })));
      const truth = await fx.client.getTable(table);
      expect(truth.sessionCount).to.equal(18);
      await w.until((x) => x.tables.get(table)?.revision === truth.revision, "the last write's revision");
      expect(w.count(table)).to.equal(18);
      expect(w.broken).to.deep.equal([]);
    });

    it("gives every watcher the same final state, whenever it started", async () => {
      const table = await fx.newTable(20);
      const early = watchTables();
      await early.until((x) => x.count(table) === 0, "the table in the first snapshot");
      const writes = Array.from({ length: 10 }, (_, i) => fx.client.register({ id: `w${i}`, projectPath: `/w/${i}` }, { table }));
      // This watcher starts while the writes run: its snapshot falls somewhere among them.
      const late = watchTables();
      await Promise.all(writes);
      const truth = await fx.client.getTable(table);
      for (const w of [early, late]) {
        await w.until((x) => x.tables.get(table)?.revision === truth.revision, "the last write's revision");
        expect(w.count(table)).to.equal(10);
        expect(w.broken).to.deep.equal([]);
      }
    });
  });
}
