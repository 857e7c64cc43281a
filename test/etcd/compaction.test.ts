/**
 * Watch from a revision etcd has compacted away:
 * OUT_OF_RANGE REVISION_COMPACTED, and the SDK's autoResume resyncs with a
 * snapshot and goes on with the live events.
 */
import { expect } from "chai";
import { Etcd3 } from "etcd3";
import { EventType, RevisionCompactedError, status } from "@session-registry/client";

import type { TestDaemon } from "../helpers/daemon.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { WatchCollector, etcdDaemon, waitFor } from "./collector.js";

describe("etcd: compacted revisions", function () {
  this.timeout(30_000);
  let etcd: TestEtcd | undefined;
  let daemon: TestDaemon | undefined;
  let raw: Etcd3 | undefined;
  const collectors: WatchCollector[] = [];

  before(async () => {
    etcd = await startEtcd();
    daemon = await etcdDaemon(etcd.endpoint, uniquePrefix());
    raw = new Etcd3({ hosts: etcd.endpoint });
  });

  after(async () => {
    for (const c of collectors.splice(0)) await c.close();
    raw?.close();
    await daemon?.stop();
    await etcd?.stop();
  });

  it("answers a watch from a compacted revision with REVISION_COMPACTED, and the SDK resyncs from a snapshot", async () => {
    const client = daemon!.client();
    const first = await client.register({ id: "c-1", projectPath: "/work/c/1" });
    await client.register({ id: "c-2", projectPath: "/work/c/2" });
    await client.remove("c-1");
    const last = await client.register({ id: "c-3", projectPath: "/work/c/3" });
    // Compact etcd's history up to the latest write: the revisions before it are gone.
    await raw!.kv.compact({ revision: String(last.revision), physical: true });

    // Without autoResume: the typed error, with the compaction point.
    const plain = new WatchCollector(client, { startRevision: first.revision });
    collectors.push(plain);
    await waitFor("the plain watch to fail", () => plain.error !== undefined);
    expect(plain.error).to.be.instanceOf(RevisionCompactedError);
    expect((plain.error as RevisionCompactedError).code).to.equal(status.OUT_OF_RANGE);

    // With autoResume: a resync snapshot of the current table, then live events.
    const resumed = new WatchCollector(client, { startRevision: first.revision, autoResume: true });
    collectors.push(resumed);
    await waitFor("the resync snapshot", () => resumed.items.length > 0 || resumed.error !== undefined);
    expect(resumed.error).to.equal(undefined);
    const snapshot = resumed.items[0]!;
    expect(snapshot.kind).to.equal("snapshot");
    if (snapshot.kind !== "snapshot") return;
    expect(snapshot.resync).to.equal(true);
    expect(snapshot.sessions.map((s) => s.id)).to.deep.equal(["c-2", "c-3"]);

    const later = await client.register({ id: "c-4", projectPath: "/work/c/4" });
    await waitFor("the live event after the resync", () => resumed.events.some((e) => e.session.id === "c-4"));
    const event = resumed.events.find((e) => e.session.id === "c-4")!;
    expect(event.type).to.equal(EventType.EVENT_TYPE_REGISTERED);
    expect(event.revision).to.equal(later.revision);
  });
});
