/**
 * The live half of the contract: Watch (snapshot, replay, compaction, order
 * under concurrency), ttl expiry and KeepAlive. Like the registry suite it
 * goes only through gRPC, so every Store runs it unchanged. Watches are
 * recorded with the generated stubs, to check exactly what crossed the wire.
 *
 * Expiry tests use 1 s ttls and wait for conditions (bounded), never for a
 * fixed time, and assert no durations.
 */
import { expect } from "chai";
import { SessionLimitReachedError, SessionNotFoundError, type SessionRegistryClient, status } from "@session-registry/client";

import type { Store, StoreLimits } from "../../src/core/store.js";
import { eventually, expectError, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { wireDetails, type RawRegistry } from "../helpers/raw.js";
import { EventType, suiteWatches } from "../helpers/watch.js";

const LIMITS: StoreLimits = { defaultMaxSessions: 10, maxTables: 1000, watchHistory: 10_000 };

export function liveConformance(storeName: string, makeStore: (limits: StoreLimits) => Store | Promise<Store>): void {
  describe(`live sessions contract (${storeName} store)`, () => {
    let d: TestDaemon;
    let client: SessionRegistryClient;
    let raw: RawRegistry;
    const watch = suiteWatches(() => raw.client);

    before(async () => {
      d = await startTestDaemon({ config: { maxSessions: LIMITS.defaultMaxSessions }, store: await makeStore(LIMITS) });
      client = d.client();
      raw = d.rawClient();
    });
    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
    });

    async function newTable(maxSessions = 10, on: SessionRegistryClient = client): Promise<string> {
      const table = uniqueName("live");
      await on.createTable({ table, maxSessions });
      return table;
    }

    describe("watch", () => {
      it("starts at revision 0 with one snapshot of the current sessions, then every later event", async () => {
        const table = await newTable();
        const a = await client.register({ id: "a", projectPath: "/a" }, { table });
        const b = await client.register({ id: "b", projectPath: "/b" }, { table });
        const w = watch(table);
        await w.until((x) => x.messages.length >= 1, "the snapshot");
        const first = w.messages[0]!;
        expect(first.kind?.$case).to.equal("snapshot");
        expect(first.revision).to.equal(b.revision);
        if (first.kind?.$case !== "snapshot") return;
        expect(first.kind.value.sessions.map((s) => s.id)).to.deep.equal(["a", "b"]);
        expect(first.kind.value.sessions[0]).to.deep.equal(a);

        const c = await client.register({ id: "c", projectPath: "/c" }, { table });
        const a2 = await client.update({ table, id: "a", name: "renamed" });
        await client.remove("b", { table });
        const afterRemove = await client.getTable(table);
        await w.until((x) => x.events.length >= 3, "three events");
        expect(w.messages.filter((m) => m.kind?.$case === "snapshot")).to.have.length(1);
        expect(w.events.map((e) => [e.type, e.session.id, e.revision])).to.deep.equal([
          [EventType.EVENT_TYPE_REGISTERED, "c", c.revision],
          [EventType.EVENT_TYPE_UPDATED, "a", a2.revision],
          [EventType.EVENT_TYPE_REMOVED, "b", afterRemove.revision],
        ]);
        expect(w.events[0]!.session).to.deep.equal(c);
        expect(w.events[1]!.session).to.deep.equal(a2);
        // A removed session comes in its last state.
        expect(w.events[2]!.session).to.deep.equal(b);
      });

      it("replays every retained event from a start revision, without a snapshot, then goes live", async () => {
        const table = await newTable();
        const s1 = await client.register({ id: "s1", projectPath: "/s1" }, { table });
        const s2 = await client.register({ id: "s2", projectPath: "/s2" }, { table });
        const s3 = await client.update({ table, id: "s1", metadata: { k: "v" } });
        const w = watch(table, s2.revision);
        await w.until((x) => x.events.length >= 2, "the replay");
        const s4 = await client.register({ id: "s4", projectPath: "/s4" }, { table });
        await w.until((x) => x.events.length >= 3, "the live event");
        expect(w.messages.some((m) => m.kind?.$case === "snapshot")).to.equal(false);
        expect(w.eventRevisions).to.deep.equal([s2.revision, s3.revision, s4.revision]);
        expect(s1.revision).to.be.lessThan(s2.revision);
      });

      it("continues a List exactly: List.revision + 1 as the start gives just the events after the page", async () => {
        const table = await newTable();
        await client.register({ id: "x", projectPath: "/x" }, { table });
        await client.register({ id: "y", projectPath: "/y" }, { table });
        const page = await client.listPage({ table });
        const z = await client.register({ id: "z", projectPath: "/z" }, { table });
        const w = watch(table, page.revision + 1);
        await w.until((x) => x.events.length >= 1, "the event after the page");
        const y2 = await client.update({ table, id: "y", name: "why" });
        await w.until((x) => x.events.length >= 2, "the live event");
        expect(w.events.map((e) => e.session.id)).to.deep.equal(["z", "y"]);
        expect(w.eventRevisions).to.deep.equal([z.revision, y2.revision]);
      });

      it("refuses a start older than the retained history with OUT_OF_RANGE REVISION_COMPACTED and its compact_revision", async () => {
        const own = await startTestDaemon({ store: await makeStore({ ...LIMITS, watchHistory: 5 }) });
        try {
          const c = own.client();
          const table = uniqueName("live");
          await c.createTable({ table, maxSessions: 10 });
          const written = [];
          for (let i = 0; i < 8; i++) written.push(await c.register({ id: `s${i}`, projectPath: `/s${i}` }, { table }));
          const ownRaw = own.rawClient();
          const old = watch(table, written[0]!.revision, ownRaw.client);
          const err = await old.ending();
          expect(err?.code).to.equal(status.OUT_OF_RANGE);
          const details = wireDetails(err!.metadata);
          expect(details.errorInfos[0]!.reason).to.equal("REVISION_COMPACTED");
          const compact = Number(details.errorInfos[0]!.metadata.get("compact_revision"));
          // The five newest events are retained: the oldest start served is just after the third write.
          expect(compact).to.be.greaterThan(written[2]!.revision);
          expect(compact).to.be.at.most(written[3]!.revision);

          const resumed = watch(table, compact, ownRaw.client);
          await resumed.until((x) => x.events.length >= 5, "the retained events");
          expect(resumed.eventRevisions).to.deep.equal(written.slice(3).map((s) => s.revision));
        } finally {
          watch.cancelAll();
          await own.stop();
        }
      });

      it("delivers every write exactly once, in revision order, to several watchers during hundreds of concurrent writes", async () => {
        const table = await newTable(1000);
        const watchers = [watch(table), watch(table), watch(table), watch(table)];
        await Promise.all(watchers.map((w) => w.until((x) => x.messages.length >= 1, "the snapshot")));
        const writers = [0, 1, 2, 3].map(() => d.client({ channelOptions: { "grpc.use_local_subchannel_pool": 1 } }));

        // 300 writes: 150 registers, then per session an update or a remove, all in flight at once.
        const revisions: number[] = [];
        const ids = Array.from({ length: 150 }, (_, i) => `c${i}`);
        await Promise.all(
          ids.map(async (id, i) => {
            const w = writers[i % writers.length]!;
            const s = await w.register({ id, projectPath: `/c/${id}` }, { table });
            revisions.push(s.revision);
            if (i % 2 === 0) {
              revisions.push((await w.update({ table, id, metadata: { n: String(i) } })).revision);
            } else {
              await w.remove(id, { table });
            }
          }),
        );
        const removals = (await client.getTable(table)).revision;
        expect(revisions.length).to.equal(225);

        const total = 300;
        await Promise.all(watchers.map((w) => w.until((x) => x.events.length >= total, `${total} events`)));
        const seen = watchers[0]!.eventRevisions;
        for (const w of watchers) expect(w.eventRevisions).to.deep.equal(seen);
        for (let i = 1; i < seen.length; i++) expect(seen[i]!).to.be.greaterThan(seen[i - 1]!);
        expect(new Set(seen).size).to.equal(total);
        for (const r of revisions) expect(seen).to.include(r);
        expect(seen[seen.length - 1]).to.equal(removals);
        const types = watchers[0]!.events.map((e) => e.type);
        expect(types.filter((t) => t === EventType.EVENT_TYPE_REGISTERED)).to.have.length(150);
        expect(types.filter((t) => t === EventType.EVENT_TYPE_UPDATED)).to.have.length(75);
        expect(types.filter((t) => t === EventType.EVENT_TYPE_REMOVED)).to.have.length(75);
        // Each session's events come in its own order: registered before updated or removed.
        const firstSeen = new Map<string, EventType>();
        for (const e of watchers[0]!.events) if (!firstSeen.has(e.session.id)) firstSeen.set(e.session.id, e.type);
        for (const t of firstSeen.values()) expect(t).to.equal(EventType.EVENT_TYPE_REGISTERED);
      });

      it("ends a table's watches with NOT_FOUND when the table is deleted", async () => {
        const table = await newTable();
        await client.register({ projectPath: "/held" }, { table });
        const w1 = watch(table);
        const w2 = watch(table, 1);
        await w1.until((x) => x.messages.length >= 1, "the snapshot");
        await client.deleteTable(table, { force: true });
        for (const w of [w1, w2]) {
          const err = await w.ending();
          expect(err?.code).to.equal(status.NOT_FOUND);
          expect(wireDetails(err!.metadata).errorInfos[0]!.reason).to.equal("TABLE_NOT_FOUND");
        }
      });

      it("refuses a watch on an unknown table with NOT_FOUND and a bad start revision with INVALID_ARGUMENT", async () => {
        const unknown = watch(uniqueName("nope"));
        expect((await unknown.ending())?.code).to.equal(status.NOT_FOUND);
        const bad = watch("-bad-");
        const err = await bad.ending();
        expect(err?.code).to.equal(status.INVALID_ARGUMENT);
        expect(wireDetails(err!.metadata).badRequests[0]!.fieldViolations.map((v) => v.field)).to.deep.equal(["table"]);
      });
    });

    describe("ttl and keep-alive", () => {
      it("sets expire_time to create_time + ttl, and KeepAlive pushes it forward without a new revision or event", async () => {
        const table = await newTable();
        const s = await client.register({ id: "t", projectPath: "/t", ttlMs: 60_000 }, { table });
        expect(s.ttl).to.deep.equal({ seconds: 60, nanos: 0 });
        expect(s.expireTime!.getTime()).to.equal(s.createTime!.getTime() + 60_000);
        const w = watch(table, s.revision + 1);
        await new Promise((resolve) => setTimeout(resolve, 5));
        const kept = await client.keepAlive("t", { table });
        expect(kept.expireTime!.getTime()).to.be.greaterThan(s.expireTime!.getTime());
        expect(kept.revision).to.equal(s.revision);
        expect(kept.updateTime).to.deep.equal(s.updateTime);
        expect((await client.getTable(table)).revision).to.equal(s.revision);
        // A later write is the first event the watcher sees: the keep-alive sent none.
        const marker = await client.register({ id: "m", projectPath: "/m" }, { table });
        await w.until((x) => x.events.length >= 1, "the marker event");
        expect(w.eventRevisions).to.deep.equal([marker.revision]);
        expect((await client.lookup({ id: "t" }, { table })).expireTime).to.deep.equal(kept.expireTime);
      });

      it("returns a session without ttl unchanged from KeepAlive", async () => {
        const table = await newTable();
        const s = await client.register({ id: "n", projectPath: "/n" }, { table });
        expect(await client.keepAlive("n", { table })).to.deep.equal(s);
      });

      it("answers KeepAlive on an unknown session with SESSION_NOT_FOUND", async () => {
        const table = await newTable();
        const err = await expectError(client.keepAlive("ghost", { table }), SessionNotFoundError);
        expect(err.code).to.equal(status.NOT_FOUND);
      });

      it("expires a session that is not kept alive: one EXPIRED event, its slot and path freed, KeepAlive then NOT_FOUND", async () => {
        const table = await newTable(1);
        const w = watch(table);
        await w.until((x) => x.messages.length >= 1, "the snapshot");
        const s = await client.register({ id: "e", projectPath: "/e", ttlMs: 1000 }, { table });
        await expectError(client.register({ projectPath: "/other" }, { table }), SessionLimitReachedError);
        // Nobody calls the daemon: the expiry must happen on its own.
        await w.until((x) => x.events.some((e) => e.type === EventType.EVENT_TYPE_EXPIRED), "the EXPIRED event");
        const expired = w.events.filter((e) => e.type === EventType.EVENT_TYPE_EXPIRED);
        expect(expired).to.have.length(1);
        expect(expired[0]!.session).to.deep.equal(s);
        expect(expired[0]!.revision).to.be.greaterThan(s.revision);
        await expectError(client.keepAlive("e", { table }), SessionNotFoundError);
        await expectError(client.lookup({ projectPath: "/e" }, { table }), SessionNotFoundError);
        expect((await client.getTable(table)).sessionCount).to.equal(0);
        const again = await client.register({ id: "e2", projectPath: "/e" }, { table });
        expect(again.projectPath).to.equal("/e");
        expect(w.events.filter((e) => e.type === EventType.EVENT_TYPE_EXPIRED)).to.have.length(1);
      });

      it("keeps a session alive past its ttl while KeepAlive is called", async () => {
        const table = await newTable();
        const s = await client.register({ id: "k", projectPath: "/k", ttlMs: 1000 }, { table });
        const until = s.expireTime!.getTime() + 1500;
        while (Date.now() < until) {
          await client.keepAlive("k", { table });
          await new Promise((resolve) => setTimeout(resolve, 250));
        }
        expect((await client.lookup({ id: "k" }, { table })).id).to.equal("k");
        await client.remove("k", { table });
      });

      it("recomputes expire_time when Update sets the ttl, and clears both when Update clears it", async () => {
        const table = await newTable();
        await client.register({ id: "u", projectPath: "/u" }, { table });
        const withTtl = await client.update({ table, id: "u", ttlMs: 1000 });
        expect(withTtl.ttl).to.deep.equal({ seconds: 1, nanos: 0 });
        expect(withTtl.expireTime!.getTime()).to.equal(withTtl.updateTime!.getTime() + 1000);
        const longer = await client.update({ table, id: "u", ttlMs: 3_600_000 });
        expect(longer.expireTime!.getTime()).to.equal(longer.updateTime!.getTime() + 3_600_000);
        const cleared = await client.update({ table, id: "u", ttlMs: null });
        expect(cleared.ttl).to.equal(undefined);
        expect(cleared.expireTime).to.equal(undefined);
      });

      it("expires a session whose ttl an Update shortened", async () => {
        const table = await newTable();
        await client.register({ id: "short", projectPath: "/short", ttlMs: 3_600_000 }, { table });
        await client.update({ table, id: "short", ttlMs: 1000 });
        await eventually(async () => (await client.getTable(table)).sessionCount === 0, "the shortened session to expire");
      });

      it("does not expire a session whose ttl an Update cleared", async () => {
        const table = await newTable();
        await client.register({ id: "keep", projectPath: "/keep", ttlMs: 1000 }, { table });
        await client.update({ table, id: "keep", ttlMs: null });
        const marker = await client.register({ id: "gone", projectPath: "/gone", ttlMs: 1000 }, { table });
        // Once a session with the same deadline has expired, the cleared one would have too.
        await eventually(async () => (await client.getTable(table)).sessionCount === 1, "the marker to expire");
        expect((await client.lookup({ id: "keep" }, { table })).ttl).to.equal(undefined);
        expect(marker.id).to.equal("gone");
      });
    });
  });
}
