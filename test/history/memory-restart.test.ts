/**
 * A memory-store daemon restarted under running watchers: its tables come
 * back empty, their revisions start over, and a revision from before the
 * restart names no point of the new history. Every watcher, of every kind,
 * must say it resynced and end up holding exactly the sessions that exist,
 * never one from before the restart.
 */
import { expect } from "chai";
import { status } from "@grpc/grpc-js";
import { SessionRegistryClient } from "@session-registry/client";

import { DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { silentLogger } from "../../src/daemon/logger.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/server.js";
import { RawRegistry } from "../helpers/raw.js";
import { expectOldHistoryRefused, expectReason, rawWatchError } from "./history-checks.js";
import { newSession, resyncedTo, startWatcher, WATCHER_KINDS, type FeedWatcher } from "./watchers.js";

describe("History: a memory daemon restarted under running watchers", function () {
  this.timeout(60_000);
  const config: DaemonConfig = { ...DEFAULT_CONFIG, logLevel: "silent", listen: "127.0.0.1:0", httpListen: undefined };
  const daemons: RunningDaemon[] = [];
  const clients: { close(): void }[] = [];
  const watchers: FeedWatcher[] = [];
  let old: { revision: number; tableUid: string; id: string };
  let raw: RawRegistry;
  const fresh = ["/a1", "/a2", "/a3", "/a4"];

  before(async () => {
    const first = await startDaemon(config, { logger: silentLogger });
    daemons.push(first);
    const c = new SessionRegistryClient(first.address);
    clients.push(c);
    const b1 = await c.register({ projectPath: "/b1" });
    const b2 = await c.register({ projectPath: "/b2" });
    old = { revision: b2.revision, tableUid: b2.tableUid, id: b1.id };
    for (const kind of WATCHER_KINDS) watchers.push(startWatcher(kind, first.address, "default"));
    for (const w of watchers) await w.until((x) => x.held().length === 2);

    await first.shutdown();
    const second = await startDaemon({ ...config, listen: `127.0.0.1:${first.port}` }, { logger: silentLogger });
    daemons.push(second);
    raw = new RawRegistry(second.address);
    clients.push(raw);
  });

  after(async () => {
    for (const w of watchers) await w.close();
    for (const c of clients) c.close();
    for (const d of daemons) await d.shutdown();
  });

  it("refuses the old table_uid (Watch, Update, Remove) and, without one, a start past the revision", async () => {
    await expectOldHistoryRefused(raw, "default", old, old.id);
    // An old client sends no table_uid: a start past the new table's revision + 1 cannot be of this history.
    const now = (await raw.getTable({ table: "default" })).table!;
    expect(old.revision + 1).to.be.greaterThan(now.revision + 1);
    const md = expectReason(await rawWatchError(raw, "default", old.revision + 1, ""), status.OUT_OF_RANGE, "FUTURE_REVISION");
    expect(md).to.deep.equal({ table: "default", table_uid: now.tableUid, current_revision: String(now.revision) });
  });

  describe("then, sessions registered anew", () => {
    before(async () => {
      for (const path of fresh) await raw.register({ requestId: "", table: "", session: newSession(path) });
    });

    for (const kind of WATCHER_KINDS) {
      it(`a ${kind} watcher says it resynced and holds exactly those sessions`, async () => {
        const w = watchers.find((x) => x.kind === kind)!;
        await resyncedTo(w, old.tableUid, fresh);
        if (kind === "cli") expect(w.stderr()).to.match(/resynced at revision \d+/);
      });
    }
  });
});
