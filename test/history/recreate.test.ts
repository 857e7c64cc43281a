/**
 * Every answer names the history of the revision it hands out, and a table
 * deleted and made again under the same name has a new one: a position in
 * the old table (a watch's revision, an etag, a page token) is refused, and
 * every kind of watcher resuming from it resyncs to exactly the new table's
 * sessions. On both stores.
 */
import { expect } from "chai";
import { status } from "@grpc/grpc-js";
import { TableUidMismatchError } from "@session-registry/client";

import { DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { rawError, type RawRegistry } from "../helpers/raw.js";
import { RecordedWatch } from "../helpers/watch.js";
import { expectOldHistoryRefused, expectReason } from "./history-checks.js";
import { newSession, resyncedTo, startWatcher, WATCHER_KINDS, type FeedWatcher } from "./watchers.js";

for (const store of ["memory", "etcd"] as const) {
  describe(`History (${store} store): a table deleted and made again`, function () {
    this.timeout(60_000);
    let etcd: TestEtcd | undefined;
    let d: TestDaemon;
    let raw: RawRegistry;

    before(async () => {
      let config: Partial<DaemonConfig> = {};
      if (store === "etcd") {
        etcd = await startEtcd();
        config = { ...DEFAULT_CONFIG, store: "etcd", etcdEndpoints: [etcd.endpoint], etcdPrefix: uniquePrefix() };
      }
      d = await startTestDaemon({ config });
      raw = d.rawClient();
    });

    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
      await etcd?.stop();
    });

    it("names the table's table_uid in every answer that hands out a revision", async () => {
      const table = uniqueName("uid");
      const created = (await raw.createTable({ table, maxSessions: 0 })).table!;
      expect(created.tableUid).to.match(/^[A-Za-z0-9._:-]{1,128}$/);
      const uid = created.tableUid;
      const registered = (await raw.register({ requestId: "", table, session: { ...newSession("/u/1"), ttl: { seconds: 60, nanos: 0 } } }))
        .session!;
      const listed = await raw.list({ table, pageSize: 0, pageToken: "" });
      const looked = (await raw.lookup({ table, key: { $case: "id", value: registered.id } })).session!;
      const kept = await d.client().keepAlive(registered.id, { table });
      const updated = (
        await raw.update({
          requestId: "",
          table,
          session: { ...newSession(""), id: registered.id, name: "n" },
          updateMask: ["name"],
          expectedRevision: 0,
        })
      ).session!;
      const watch = new RecordedWatch(raw.client, table);
      await watch.until((w) => w.messages.length === 1, "the snapshot");
      const removed = (await raw.remove({ requestId: "", table, id: registered.id, expectedRevision: 0, allowMissing: false })).session!;
      await watch.until((w) => w.messages.length === 2, "the REMOVED event");
      watch.cancel();
      const tables = (await d.client().listTables()).filter((t) => t.name === table);
      expect([
        (await raw.getTable({ table })).table!.tableUid,
        tables[0]!.tableUid,
        registered.tableUid,
        listed.tableUid,
        listed.sessions[0]!.tableUid,
        looked.tableUid,
        kept.tableUid,
        updated.tableUid,
        removed.tableUid,
        ...watch.messages.map((m) => m.tableUid),
        ...watch.messages.flatMap((m) => (m.kind?.$case === "snapshot" ? m.kind.value.sessions : [])).map((s) => s.tableUid),
        ...watch.events.map((e) => e.session.tableUid),
      ]).to.deep.equal(Array(13).fill(uid));
    });

    it("refuses a table_uid that is not a valid one with INVALID_ARGUMENT naming table_uid", async () => {
      const err = await rawError(
        raw.update({
          requestId: "",
          table: "",
          session: { ...newSession(""), id: "x", name: "n" },
          updateMask: ["name"],
          expectedRevision: 0,
          tableUid: "no spaces",
        }),
      );
      expect(err.code).to.equal(status.INVALID_ARGUMENT);
      expect(err.details).to.contain("table_uid");
    });

    describe("with a position kept from the old table", () => {
      const table = uniqueName("again");
      let old: { revision: number; tableUid: string; id: string; pageToken: string };
      const watchers: FeedWatcher[] = [];

      before(async () => {
        const c = d.client();
        await c.createTable({ table });
        const b1 = await c.register({ projectPath: "/b1" }, { table });
        const b2 = await c.register({ projectPath: "/b2" }, { table });
        const page = await c.listPage({ table, pageSize: 1 });
        old = { revision: b2.revision, tableUid: b2.tableUid, id: b1.id, pageToken: page.nextPageToken };
        await c.deleteTable(table, { force: true });
        await c.createTable({ table });
        for (const path of ["/c1", "/c2"]) await c.register({ projectPath: path }, { table });
      });

      after(async () => {
        for (const w of watchers) await w.close();
      });

      it("refuses it: Watch, Update and Remove with its table_uid, and its page token", async () => {
        await expectOldHistoryRefused(raw, table, old, old.id);
        const err = await rawError(raw.list({ table, pageSize: 1, pageToken: old.pageToken }));
        expectReason(err, status.ABORTED, "TABLE_UID_MISMATCH");
      });

      it("refuses it through the TypeScript SDK too, with TableUidMismatchError naming the history now", async () => {
        const c = d.client();
        const s = await c.lookup({ projectPath: "/c1" }, { table });
        const err = await expectError(
          c.update({ id: s.id, table, name: "x", expectedRevision: s.revision, tableUid: old.tableUid }),
          TableUidMismatchError,
        );
        expect([err.tableUid, err.currentRevision]).to.deep.equal([s.tableUid, (await c.getTable(table)).revision]);
        await expectError(c.remove(s.id, { table, expectedRevision: s.revision, tableUid: old.tableUid }), TableUidMismatchError);
        expect((await c.update({ id: s.id, table, name: "x", expectedRevision: s.revision, tableUid: s.tableUid })).name).to.equal("x");
      });

      for (const kind of WATCHER_KINDS) {
        it(`a ${kind} watcher resuming from it says it resynced and holds exactly the new table's sessions`, async () => {
          const w = startWatcher(kind, d.address, table, { startRevision: old.revision + 1, tableUid: old.tableUid });
          watchers.push(w);
          await resyncedTo(w, old.tableUid, ["/c1", "/c2"]);
          if (kind === "cli") expect(w.stderr()).to.match(/resynced at revision \d+/);
        });
      }
    });
  });
}
