/**
 * On etcd an expiry is etcd revoking a lease, so no Txn of the registry runs
 * at its revision; the store's prefix watch then moves the table revision
 * past it (ExpiryWatch, src/store/etcd/expiry.ts). Checked end to end: after
 * an EXPIRED event the table revision catches up with it (bounded poll: the
 * bump is a round trip after the expiry), and a watch resumed from that
 * revision + 1 does not replay the EXPIRED event.
 */
import { expect } from "chai";
import type { SessionRegistryClient } from "@session-registry/client";

import { EtcdStore } from "../../src/store/etcd/store.js";
import type { StoreLimits } from "../../src/core/store.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import type { RawRegistry } from "../helpers/raw.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { EventType, suiteWatches } from "../helpers/watch.js";

const LIMITS: StoreLimits = { defaultMaxSessions: 10, maxTables: 1000, watchHistory: 10_000 };

describe("etcd: table revision after an expiry", function () {
  this.timeout(30_000);
  let etcd: TestEtcd | undefined;
  let d: TestDaemon | undefined;
  let client: SessionRegistryClient;
  let raw: RawRegistry;
  const watch = suiteWatches(() => raw.client);

  before(async () => {
    etcd = await startEtcd();
    // No observer: the store watches expiries (and bumps revisions) without one.
    d = await startTestDaemon({ store: new EtcdStore(LIMITS, { endpoints: [etcd.endpoint], prefix: uniquePrefix() }) });
    client = d.client();
    raw = d.rawClient();
  });

  after(async () => {
    await d?.stop();
    await etcd?.stop();
  });

  it("moves the table revision past the EXPIRED event, so a watch resumed from it does not replay the expiry", async () => {
    const table = uniqueName("expiry");
    await client.createTable({ table, maxSessions: 10 });
    const w = watch(table);
    await w.until((x) => x.messages.length >= 1, "the snapshot");
    // A 1 s ttl: etcd extends it to its minimum lease TTL (2 s with its defaults).
    const s = await client.register({ id: "e", projectPath: "/e", ttlMs: 1000 }, { table });
    await w.until((x) => x.events.some((e) => e.type === EventType.EVENT_TYPE_EXPIRED), "the EXPIRED event");
    const expired = w.events.find((e) => e.type === EventType.EVENT_TYPE_EXPIRED)!;
    expect(expired.session.id).to.equal("e");
    expect(expired.revision).to.be.greaterThan(s.revision);

    // The bump follows the expiry by a round trip: poll, bounded.
    const deadline = Date.now() + 10_000;
    let revision = (await client.getTable(table)).revision;
    while (revision < expired.revision) {
      if (Date.now() > deadline) expect.fail(`table revision ${revision} never reached the EXPIRED event's ${expired.revision}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
      revision = (await client.getTable(table)).revision;
    }
    const listed = await raw.list({ table, pageSize: 0, pageToken: "" });
    expect(listed.sessions).to.deep.equal([]);
    expect(listed.revision).to.equal(revision);

    const resumed = watch(table, revision + 1);
    const marker = await client.register({ id: "m", projectPath: "/m" }, { table });
    await resumed.until((x) => x.events.length >= 1, "the marker's event");
    const firstEvent = resumed.events[0]!;
    expect(firstEvent.type).to.equal(EventType.EVENT_TYPE_REGISTERED);
    expect(firstEvent.session.id).to.equal("m");
    expect(firstEvent.revision).to.equal(marker.revision);
    // The bump itself is no event: the first watch saw the expiry, then the marker.
    await w.until((x) => x.events.some((e) => e.session.id === "m"), "the marker on the first watch");
    expect(w.events.map((e) => [e.type, e.session.id])).to.deep.equal([
      [EventType.EVENT_TYPE_REGISTERED, "e"],
      [EventType.EVENT_TYPE_EXPIRED, "e"],
      [EventType.EVENT_TYPE_REGISTERED, "m"],
    ]);
  });
});
