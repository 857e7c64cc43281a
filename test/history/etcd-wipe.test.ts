/**
 * etcd wiped under a running daemon: every key gone and etcd's revisions
 * started over, while the daemon's watchers still hold the old table. When
 * the daemon reaches etcd again its watches must not go on as if nothing
 * happened: each watcher, of every kind, says it resynced and ends up
 * holding exactly the sessions of the table as it is now.
 *
 * The daemon talks to etcd through a gated proxy, so that the table is made
 * again (through a second daemon) before the first can look: the order is
 * the test's, not its reconnect timers'.
 */
import { expect } from "chai";
import { status } from "@grpc/grpc-js";

import { DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { startGateProxy, type GateProxy } from "../helpers/gate-proxy.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import type { RawRegistry } from "../helpers/raw.js";
import { RecordedTables, RecordedWatch } from "../helpers/watch.js";
import { expectOldHistoryRefused, expectReason } from "./history-checks.js";
import { resyncedTo, startWatcher, WATCHER_KINDS, type FeedWatcher } from "./watchers.js";

describe("History (etcd store): etcd wiped under a running daemon", function () {
  this.timeout(90_000);
  const table = uniqueName("wiped");
  let etcd: TestEtcd | undefined;
  let proxy: GateProxy | undefined;
  const daemons: TestDaemon[] = [];
  let raw: RawRegistry;
  let rawWatch: RecordedWatch;
  let tablesWatch: RecordedTables;
  const watchers: FeedWatcher[] = [];
  let old: { revision: number; tableUid: string; id: string };

  before(async () => {
    etcd = await startEtcd();
    const url = new URL(etcd.endpoint);
    proxy = await startGateProxy(url.hostname, Number(url.port));
    const prefix = uniquePrefix();
    const config = (endpoint: string): Partial<DaemonConfig> => ({
      ...DEFAULT_CONFIG,
      store: "etcd",
      etcdEndpoints: [endpoint],
      etcdPrefix: prefix,
    });
    const a = await startTestDaemon({ config: config(`http://${proxy.address}`) });
    daemons.push(a);
    raw = a.rawClient();
    const c = a.client();
    await c.createTable({ table });
    const b1 = await c.register({ projectPath: "/b1" }, { table });
    // Old revisions far past what the wiped etcd reaches in this test: a watch resumed from them would hear nothing.
    for (let i = 0; i < 40; i++) await c.update({ table, id: b1.id, name: `n${i}` });
    const b2 = await c.register({ projectPath: "/b2" }, { table });
    old = { revision: b2.revision, tableUid: b2.tableUid, id: b1.id };
    rawWatch = new RecordedWatch(raw.client, table);
    for (const kind of WATCHER_KINDS) watchers.push(startWatcher(kind, a.address, table));
    for (const w of watchers) await w.until((x) => x.held().length === 2);
    await rawWatch.until((w) => w.messages.length === 1, "the snapshot");
    // A second table, which the wipe takes away.
    await c.createTable({ table: `${table}-gone` });
    tablesWatch = new RecordedTables(raw.client);
    await tablesWatch.until((w) => w.tables.has(`${table}-gone`) && w.count(table) === 2, "the tables before the wipe");

    proxy.shut();
    await etcd.wipe();
    // The table made again, on the empty etcd, by another daemon.
    const b = await startTestDaemon({ config: config(etcd.endpoint) });
    daemons.push(b);
    const writer = b.client();
    await writer.createTable({ table });
    for (const path of ["/w1", "/w2", "/w3"]) await writer.register({ projectPath: path }, { table });
    proxy.open();
  });

  after(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    rawWatch?.cancel();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    tablesWatch?.cancel();
    for (const w of watchers) await w.close();
    for (const d of daemons) await d.stop();
    await proxy?.close();
    await etcd?.stop();
  });

  it("ends a running raw watch with TABLE_UID_MISMATCH naming the table's new history", async () => {
    const err = await rawWatch.ending(60_000);
    const md = expectReason(err, status.ABORTED, "TABLE_UID_MISMATCH");
    expect(md.table_uid).to.not.equal(old.tableUid);
    expect(rawWatch.messages.map((m) => m.tableUid)).to.deep.equal([old.tableUid]);
  });

  it("refuses the old table_uid: Watch, Update and Remove", async () => {
    await expectOldHistoryRefused(raw, table, old, old.id);
  });

  for (const kind of WATCHER_KINDS) {
    it(`a ${kind} watcher says it resynced and holds exactly the sessions of the table made again`, async () => {
      const w = watchers.find((x) => x.kind === kind)!;
      await resyncedTo(w, old.tableUid, ["/w1", "/w2", "/w3"]);
      if (kind === "cli") expect(w.stderr()).to.match(/resynced at revision \d+/);
    });
  }

  it("reports one table_uid on every daemon of the etcd store", async () => {
    const uids = await Promise.all(daemons.map(async (d) => (await d.client().getTable(table)).tableUid));
    expect(new Set(uids).size).to.equal(1);
  });

  it("brings a running tables watch to the tables as they are now: the table made again with its sessions, the other gone", async () => {
    const now = await daemons[1]!.client().getTable(table);
    await tablesWatch.until((w) => w.tables.get(table)?.tableUid === now.tableUid && w.count(table) === 3, "the table made again", 60_000);
    await tablesWatch.until((w) => !w.tables.has(`${table}-gone`), "the table the wipe took away", 60_000);
    expect([...tablesWatch.tables.keys()].sort()).to.deep.equal(["default", table]);
    // And it goes on live, though etcd's revisions are now below those it had seen.
    await daemons[1]!.client().register({ projectPath: "/w4" }, { table });
    await tablesWatch.until((w) => w.count(table) === 4, "a session registered after the wipe");
    expect(tablesWatch.ended).to.equal(false);
    expect(tablesWatch.broken).to.deep.equal([]);
  });
});
