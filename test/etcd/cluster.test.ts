/**
 * Several daemons on one etcd: one exact limit, one
 * uniqueness rule, one change feed, TTLs on etcd leases, and sessions that
 * outlive the daemon that registered them.
 */
import { expect } from "chai";
import { EventType, ProjectAlreadyOpenError, SessionLimitReachedError, status, type SessionRegistryClient } from "@session-registry/client";

import type { TestDaemon } from "../helpers/daemon.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { WatchCollector, etcdDaemon, waitFor } from "./collector.js";

describe("etcd: three daemons on one etcd", function () {
  this.timeout(60_000);
  let etcd: TestEtcd | undefined;
  let daemons: TestDaemon[] = [];
  const collectors: WatchCollector[] = [];

  before(async () => {
    etcd = await startEtcd();
    const prefix = uniquePrefix();
    daemons = await Promise.all([0, 1, 2].map(() => etcdDaemon(etcd!.endpoint, prefix)));
  });

  after(async () => {
    for (const c of collectors.splice(0)) await c.close();
    for (const d of daemons) await d.stop();
    await etcd?.stop();
  });

  /** `n` SDK clients per daemon, each on its own connection. */
  function clients(n: number): SessionRegistryClient[] {
    return daemons.flatMap((d) =>
      Array.from({ length: n }, () => d.client({ channelOptions: { "grpc.use_local_subchannel_pool": 1 }, timeoutMs: 30_000 })),
    );
  }

  function watch(client: SessionRegistryClient, table: string, startRevision = 0): WatchCollector {
    const c = new WatchCollector(client, { table, startRevision });
    collectors.push(c);
    return c;
  }

  it("enforces one exact limit: of 1,000 concurrent Registers across the daemons, exactly 10 succeed", async () => {
    const [a] = daemons;
    await a!.client().createTable({ table: "limited", maxSessions: 10 });
    const pool = clients(2);
    const results = await Promise.allSettled(
      Array.from({ length: 1000 }, (_, i) =>
        pool[i % pool.length]!.register({ id: `s-${i}`, projectPath: `/work/limited/${i}` }, { table: "limited" }),
      ),
    );
    const ok = results.filter((r) => r.status === "fulfilled");
    const failed = results.flatMap((r) => (r.status === "rejected" ? [r.reason as unknown] : []));
    expect(ok).to.have.length(10);
    for (const err of failed) {
      expect(err).to.be.instanceOf(SessionLimitReachedError);
      expect((err as SessionLimitReachedError).code).to.equal(status.RESOURCE_EXHAUSTED);
    }
    const table = await daemons[2]!.client().getTable("limited");
    expect(table.sessionCount).to.equal(10);
  });

  it("lets exactly one of many concurrent Registers of one project path succeed", async () => {
    await daemons[1]!.client().createTable({ table: "one-path", maxSessions: 1000 });
    const pool = clients(1);
    const results = await Promise.allSettled(
      Array.from({ length: 300 }, (_, i) =>
        pool[i % pool.length]!.register({ id: `p-${i}`, projectPath: "/work/shared" }, { table: "one-path" }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled")).to.have.length(1);
    for (const r of results) if (r.status === "rejected") expect(r.reason).to.be.instanceOf(ProjectAlreadyOpenError);
  });

  it("shows a Watch on daemon A, in revision order, what daemons B and C wrote: no gaps, no duplicates", async () => {
    const [a, b, c] = daemons.map((d) => d.client());
    await a!.createTable({ table: "feed", maxSessions: 100 });
    const feed = watch(a!, "feed");
    await feed.started();

    const expected: { type: EventType; id: string; revision: number }[] = [];
    // Concurrent registers through B and C, then updates and removes.
    const registered = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 === 0 ? b! : c!).register({ id: `f-${i}`, projectPath: `/work/feed/${i}` }, { table: "feed" }),
      ),
    );
    for (const s of registered) expected.push({ type: EventType.EVENT_TYPE_REGISTERED, id: s.id, revision: s.revision });
    const updated = await Promise.all(
      registered.slice(0, 10).map((s, i) => (i % 2 === 0 ? c! : b!).update({ id: s.id, table: "feed", name: `renamed-${i}` })),
    );
    for (const s of updated) expected.push({ type: EventType.EVENT_TYPE_UPDATED, id: s.id, revision: s.revision });
    for (const s of registered.slice(10, 15)) {
      await b!.remove(s.id, { table: "feed" });
      const r = await c!.register({ id: `${s.id}-again`, projectPath: `/work/again/${s.id}` }, { table: "feed" });
      expected.push({ type: EventType.EVENT_TYPE_REGISTERED, id: r.id, revision: r.revision });
    }
    const table = await c!.getTable("feed");
    expected.sort((x, y) => x.revision - y.revision);

    await waitFor("A's watch to reach the table revision", () => feed.events.at(-1)?.revision === table.revision);
    const seen = feed.events;
    const revisions = seen.map((e) => e.revision);
    for (let i = 1; i < revisions.length; i++) expect(revisions[i]).to.be.greaterThan(revisions[i - 1]!);
    // Every write is there once; the removes' revisions are not known to the test, so compare the rest by revision.
    const nonRemoved = seen
      .filter((e) => e.type !== EventType.EVENT_TYPE_REMOVED)
      .map((e) => ({ type: e.type, id: e.session.id, revision: e.revision }));
    expect(nonRemoved).to.deep.equal(expected);
    expect(seen.filter((e) => e.type === EventType.EVENT_TYPE_REMOVED).map((e) => e.session.id)).to.deep.equal(
      registered.slice(10, 15).map((s) => s.id),
    );
    expect(seen).to.have.length(expected.length + 5);
  });

  it("keeps a session registered via A alive through B, and expires it on every daemon's watches once not kept alive", async () => {
    const [a, b, c] = daemons.map((d) => d.client());
    await a!.createTable({ table: "ttl", maxSessions: 10 });
    const watches = [a!, b!, c!].map((client) => watch(client, "ttl"));
    await Promise.all(watches.map((w) => w.started()));

    const session = await a!.register({ id: "leased", projectPath: "/work/leased", ttlMs: 2000 }, { table: "ttl" });
    // Kept alive through B for well past its ttl (and etcd's lease rounding).
    const until = Date.now() + 5000;
    while (Date.now() < until) {
      await b!.keepAlive("leased", { table: "ttl" });
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    expect((await c!.lookup({ id: "leased" }, { table: "ttl" })).id).to.equal("leased");

    // Left alone, it expires: EXPIRED (not REMOVED) on all three daemons.
    for (const w of watches) {
      await waitFor("EXPIRED on every daemon", () =>
        w.events.some((e) => e.type === EventType.EVENT_TYPE_EXPIRED && e.session.id === "leased"),
      );
      expect(w.events.filter((e) => e.session.id === "leased").map((e) => e.type)).to.deep.equal([
        EventType.EVENT_TYPE_REGISTERED,
        EventType.EVENT_TYPE_EXPIRED,
      ]);
      const expired = w.events.find((e) => e.type === EventType.EVENT_TYPE_EXPIRED)!;
      expect(expired.revision).to.be.greaterThan(session.revision);
    }
    const revisions = watches.map((w) => w.events.find((e) => e.type === EventType.EVENT_TYPE_EXPIRED)!.revision);
    expect(new Set(revisions).size).to.equal(1);
  });

  it("keeps a daemon's sessions when the daemon dies", async () => {
    const c = daemons[2]!.client();
    const s = await c.register({ id: "survivor", projectPath: "/work/survivor" });
    await daemons[2]!.stop();
    for (const d of daemons.slice(0, 2)) {
      const found = await d.client().lookup({ id: "survivor" });
      expect(found.revision).to.equal(s.revision);
    }
  });
});
