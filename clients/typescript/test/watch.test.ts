/**
 * SessionRegistryClient.watch against real daemons: the snapshot and the
 * events as WatchItems, list-then-watch, the ways a loop ends (break,
 * close(), an AbortSignal, a typed error), and autoResume: reconnecting from
 * lastRevision + 1 after the daemon went away or ended a slow watcher
 * (WATCHER_TOO_SLOW), and resyncing with a fresh snapshot after
 * REVISION_COMPACTED. Waits are for conditions, bounded; nothing asserts on
 * timing.
 */
import { expect } from "chai";
import {
  EventType,
  RevisionCompactedError,
  type Session,
  SessionRegistryClient,
  SessionRegistryError,
  status,
  TableNotFoundError,
  type WatchItem,
  WatcherLimitReachedError,
  WatcherTooSlowError,
} from "@session-registry/client";

import { eventually, expectError, restartableDaemons, startTestDaemon, uniqueName, type TestDaemon } from "../../../test/helpers/daemon.js";

type Event = Extract<WatchItem, { kind: "event" }>;
type Snapshot = Extract<WatchItem, { kind: "snapshot" }>;

/** The next `n` items; fails if the stream ends first. */
async function take(it: AsyncIterator<WatchItem>, n: number): Promise<WatchItem[]> {
  const items: WatchItem[] = [];
  while (items.length < n) {
    const r = await it.next();
    if (r.done === true) throw new Error(`the watch ended after ${items.length} of ${n} items`);
    items.push(r.value);
  }
  return items;
}

function asSnapshot(item: WatchItem | undefined): Snapshot {
  if (item?.kind !== "snapshot") throw new Error(`expected a snapshot, got ${JSON.stringify(item?.kind)}`);
  return item;
}

function asEvent(item: WatchItem | undefined): Event {
  if (item?.kind !== "event") throw new Error(`expected an event, got ${JSON.stringify(item?.kind)}`);
  return item;
}

/** [type, session id, revision] of each event, for one deep-equal. */
function summary(items: WatchItem[]): [EventType, string, number][] {
  return items.map((item) => {
    const e = asEvent(item);
    return [e.type, e.session.id, e.revision];
  });
}

describe("SessionRegistryClient.watch (SDK)", () => {
  let d: TestDaemon;
  let client: SessionRegistryClient;
  before(async () => {
    d = await startTestDaemon();
    client = d.client();
  });
  after(async () => {
    await d.stop();
  });
  afterEach(async () => {
    // Every test ends its watches; a leak shows up here rather than as a hung shutdown.
    await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to end", 5_000);
  });

  async function newTable(): Promise<string> {
    const table = uniqueName("watch");
    await client.createTable({ table });
    return table;
  }

  it("yields a snapshot, then REGISTERED, UPDATED and REMOVED events; break cancels the call", async () => {
    const table = await newTable();
    const a = await client.register({ projectPath: "/w/a" }, { table });
    const stream = client.watch({ table });
    expect(stream.lastRevision).to.equal(0);

    const items: WatchItem[] = [];
    const expected: [EventType, string, number][] = [];
    for await (const item of stream) {
      items.push(item);
      if (items.length === 1) {
        const snapshot = asSnapshot(item);
        expect(snapshot.resync).to.equal(false);
        expect(snapshot.revision).to.equal(a.revision);
        expect(snapshot.sessions.map((s) => s.id)).to.deep.equal([a.id]);
        expect(stream.lastRevision).to.equal(a.revision);

        const b = await client.register({ projectPath: "/w/b" }, { table });
        const renamed = await client.update({ id: a.id, table, name: "renamed" });
        await client.remove(b.id, { table });
        const removedAt = (await client.getTable(table)).revision;
        expected.push(
          [EventType.EVENT_TYPE_REGISTERED, b.id, b.revision],
          [EventType.EVENT_TYPE_UPDATED, a.id, renamed.revision],
          [EventType.EVENT_TYPE_REMOVED, b.id, removedAt],
        );
      }
      if (items.length === 4) break;
    }
    expect(summary(items.slice(1))).to.deep.equal(expected);
    expect(asEvent(items[2]).session.name).to.equal("renamed");
    expect(stream.lastRevision).to.equal(expected[2]![2]);
    // Leaving the loop cancelled the call: the daemon's watcher slot is free again.
    await eventually(() => d.daemon.registry.activeWatchers === 0, "the daemon to see the cancel", 5_000);
  });

  it("list-then-watch from page.revision + 1 yields exactly the changes after the page", async () => {
    const table = await newTable();
    await client.register({ projectPath: "/lw/a" }, { table });
    await client.register({ projectPath: "/lw/b" }, { table });
    const page = await client.listPage({ table });
    expect(page.sessions).to.have.length(2);

    const c = await client.register({ projectPath: "/lw/c" }, { table });
    const renamed = await client.update({ id: c.id, table, name: "c2" });

    const stream = client.watch({ table, startRevision: page.revision + 1 });
    try {
      const it = stream[Symbol.asyncIterator]();
      const items = await take(it, 2);
      expect(summary(items)).to.deep.equal([
        [EventType.EVENT_TYPE_REGISTERED, c.id, c.revision],
        [EventType.EVENT_TYPE_UPDATED, c.id, renamed.revision],
      ]);
      // And it goes on live.
      const d2 = await client.register({ projectPath: "/lw/d" }, { table });
      expect(summary(await take(it, 1))).to.deep.equal([[EventType.EVENT_TYPE_REGISTERED, d2.id, d2.revision]]);
    } finally {
      stream.close();
    }
  });

  it("close() ends the iteration without an error, also while the consumer waits", async () => {
    const table = await newTable();
    const stream = client.watch({ table });
    const it = stream[Symbol.asyncIterator]();
    asSnapshot((await it.next()).value as WatchItem);
    const waiting = it.next(); // nothing more is coming
    stream.close();
    expect((await waiting).done).to.equal(true);
    expect((await it.next()).done).to.equal(true);
    stream.close(); // idempotent

    // Closed inside a for-await loop: the loop just ends.
    const second = client.watch({ table });
    let count = 0;
    for await (const item of second) {
      count += 1;
      asSnapshot(item);
      second.close();
    }
    expect(count).to.equal(1);
  });

  it("aborting the signal ends the iteration without an error", async () => {
    const table = await newTable();
    const controller = new AbortController();
    const stream = client.watch({ table, signal: controller.signal });
    let gotSnapshot!: () => void;
    const snapshotSeen = new Promise<void>((resolve) => (gotSnapshot = resolve));
    const items: WatchItem[] = [];
    const loop = (async () => {
      for await (const item of stream) {
        items.push(item);
        gotSnapshot();
      }
    })();
    await snapshotSeen;
    controller.abort();
    await loop; // resolves: no throw
    expect(items.map((i) => i.kind)).to.deep.equal(["snapshot"]);

    // An already aborted signal: no call, no items.
    const none: WatchItem[] = [];
    for await (const item of client.watch({ table, signal: AbortSignal.abort() })) none.push(item);
    expect(none).to.deep.equal([]);
  });

  it("throws TableNotFoundError for an unknown table, with or without autoResume", async () => {
    for (const autoResume of [false, true]) {
      const it = client.watch({ table: uniqueName("missing"), autoResume })[Symbol.asyncIterator]();
      await expectError(it.next(), TableNotFoundError);
      expect((await it.next()).done).to.equal(true);
    }
  });

  it("ends with TableNotFoundError when the watched table is deleted (force), after no REMOVED events", async () => {
    const table = await newTable();
    const a = await client.register({ projectPath: "/del/a" }, { table });
    const stream = client.watch({ table });
    const items: WatchItem[] = [];
    const err = await expectError(
      (async () => {
        for await (const item of stream) {
          items.push(item);
          if (item.kind === "snapshot") await client.deleteTable(table, { force: true });
        }
      })(),
      TableNotFoundError,
    );
    expect(err.metadata.table).to.equal(table);
    // A forced delete sends no events for the sessions it drops: the snapshot (holding `a`) is all the stream had.
    expect(items).to.have.length(1);
    expect(asSnapshot(items[0]).sessions.map((s) => s.id)).to.deep.equal([a.id]);
  });

  it("rejects a watch on a closed client with CANCELLED", async () => {
    const closed = new SessionRegistryClient(d.address);
    closed.close();
    const err = await expectError(closed.watch()[Symbol.asyncIterator]().next(), SessionRegistryError);
    expect(err.code).to.equal(status.CANCELLED);
  });

  it("close() on the client ends its open watches", async () => {
    const own = new SessionRegistryClient(d.address);
    const stream = own.watch({});
    const it = stream[Symbol.asyncIterator]();
    asSnapshot((await it.next()).value as WatchItem);
    const waiting = it.next();
    own.close();
    expect((await waiting).done).to.equal(true);
  });

  describe("with a short history (watchHistory 5)", () => {
    let small: TestDaemon;
    let c: SessionRegistryClient;
    before(async () => {
      small = await startTestDaemon({ config: { watchHistory: 5 } });
      c = small.client();
    });
    after(async () => {
      await small.stop();
    });

    /** A table with one session written 8 times, so revision 1 is long compacted. */
    async function compactedTable(): Promise<{ table: string; session: Session }> {
      const table = uniqueName("compact");
      await c.createTable({ table });
      let session = await c.register({ projectPath: "/compact/a" }, { table });
      for (let i = 0; i < 7; i++) session = await c.update({ id: session.id, table, name: `n${i}` });
      return { table, session };
    }

    it("throws RevisionCompactedError without autoResume", async () => {
      const { table } = await compactedTable();
      const it = c.watch({ table, startRevision: 1 })[Symbol.asyncIterator]();
      const err = await expectError(it.next(), RevisionCompactedError);
      expect(err.compactRevision).to.be.greaterThan(1);
    });

    it("with autoResume, resyncs with a snapshot (resync: true) of the current state, then goes live", async () => {
      const { table, session } = await compactedTable();
      const other = await c.register({ projectPath: "/compact/b" }, { table });
      const stream = c.watch({ table, startRevision: 1, autoResume: true, backoff: { initialMs: 10 } });
      try {
        const it = stream[Symbol.asyncIterator]();
        const snapshot = asSnapshot((await take(it, 1))[0]);
        expect(snapshot.resync).to.equal(true);
        expect(snapshot.revision).to.equal(other.revision);
        expect(snapshot.sessions.map((s) => [s.id, s.revision])).to.deep.equal([
          [session.id, session.revision],
          [other.id, other.revision],
        ]);
        const updated = await c.update({ id: session.id, table, name: "live" });
        expect(summary(await take(it, 1))).to.deep.equal([[EventType.EVENT_TYPE_UPDATED, session.id, updated.revision]]);
        expect(stream.lastRevision).to.equal(updated.revision);
      } finally {
        stream.close();
      }
    });
  });

  describe("with a small server queue (watchQueue 2)", () => {
    let slow: TestDaemon;
    let c: SessionRegistryClient;
    before(async () => {
      slow = await startTestDaemon({ config: { watchQueue: 2 } });
      c = slow.client();
    });
    after(async () => {
      await slow.stop();
    });

    /** Updates one session with ~16 KB of metadata until the daemon ends the (not reading) watcher. */
    async function overrun(table: string, id: string): Promise<Session[]> {
      const big = { a: "x".repeat(4000), b: "y".repeat(4000), c: "z".repeat(4000), d: "w".repeat(4000) };
      const writes: Session[] = [];
      for (let i = 0; slow.daemon.registry.activeWatchers > 0; i++) {
        if (i >= 3_000) throw new Error("the daemon never ended the slow watcher");
        writes.push(await c.update({ id, table, metadata: { ...big, i: String(i) } }));
      }
      return writes;
    }

    it("without autoResume, delivers what was sent, then throws WatcherTooSlowError", async () => {
      const table = uniqueName("slow");
      await c.createTable({ table });
      const s = await c.register({ projectPath: "/slow/a" }, { table });
      const stream = c.watch({ table });
      const it = stream[Symbol.asyncIterator]();
      asSnapshot((await it.next()).value as WatchItem);
      const writes = await overrun(table, s.id);

      const revisions: number[] = [];
      const err = await expectError(
        (async () => {
          for (;;) {
            const r = await it.next();
            if (r.done === true) return;
            revisions.push(asEvent(r.value).revision);
          }
        })(),
        WatcherTooSlowError,
      );
      // What arrived is a gap-free prefix of the writes, and the error says where to resume.
      expect(revisions).to.deep.equal(writes.slice(0, revisions.length).map((w) => w.revision));
      expect(err.resumeRevision).to.equal(writes[revisions.length]?.revision);
    });

    it("with autoResume, resumes from resume_revision: every write arrives once, in order, with no snapshot, then live events", async () => {
      const table = uniqueName("slow");
      await c.createTable({ table });
      const s = await c.register({ projectPath: "/slow/b" }, { table });
      const stream = c.watch({ table, autoResume: true, backoff: { initialMs: 10 } });
      try {
        const it = stream[Symbol.asyncIterator]();
        expect(asSnapshot((await it.next()).value as WatchItem).resync).to.equal(false);
        const writes = await overrun(table, s.id);
        const last = writes[writes.length - 1]!;

        const revisions: number[] = [];
        while (revisions[revisions.length - 1] !== last.revision) {
          const [item] = await take(it, 1);
          revisions.push(asEvent(item).revision);
        }
        expect(revisions).to.deep.equal(writes.map((w) => w.revision));

        const live = await c.update({ id: s.id, table, name: "live" });
        expect(summary(await take(it, 1))).to.deep.equal([[EventType.EVENT_TYPE_UPDATED, s.id, live.revision]]);
      } finally {
        stream.close();
      }
    });
  });

  describe("with one watcher allowed (maxWatchers 1)", () => {
    let one: TestDaemon;
    let c: SessionRegistryClient;
    before(async () => {
      one = await startTestDaemon({ config: { maxWatchers: 1 } });
      c = one.client();
    });
    after(async () => {
      await one.stop();
    });

    it("throws WatcherLimitReachedError without autoResume, and waits for a free slot with it", async () => {
      const holder = c.watch();
      const held = holder[Symbol.asyncIterator]();
      asSnapshot((await held.next()).value as WatchItem);

      const err = await expectError(c.watch()[Symbol.asyncIterator]().next(), WatcherLimitReachedError);
      expect(err.max).to.equal(1);

      const waiting = c.watch({ autoResume: true, backoff: { initialMs: 10, maxMs: 50 } });
      try {
        const next = waiting[Symbol.asyncIterator]().next();
        // Gives the waiting watch time to be refused and to retry; the
        // assertions hold either way, this only makes the retry path likely.
        await new Promise((resolve) => setTimeout(resolve, 100));
        expect(one.daemon.registry.activeWatchers).to.equal(1);
        holder.close();
        const first = await next;
        expect(asSnapshot(first.value as WatchItem).resync).to.equal(false);
      } finally {
        waiting.close();
      }
    });
  });

  describe("autoResume across a daemon restart on the same port", () => {
    const daemons = restartableDaemons();

    it("reconnects with backoff and, the daemon's history being a new one, resyncs instead of resuming", async () => {
      const first = await daemons.start();
      const c = daemons.client(first.address);
      await c.register({ projectPath: "/r/1" });
      const two = await c.register({ projectPath: "/r/2" });

      const told: string[] = [];
      const stream = c.watch({
        autoResume: true,
        backoff: { initialMs: 20, maxMs: 200 },
        onReconnect: (e) => told.push(e.kind === "reconnecting" ? `reconnecting ${e.error?.reason}` : `resumed ${e.revision}`),
      });
      try {
        const it = stream[Symbol.asyncIterator]();
        const snapshot = asSnapshot((await it.next()).value as WatchItem);
        expect(snapshot.revision).to.equal(two.revision);
        expect(stream.tableUid).to.equal(two.tableUid);

        // The first daemon ends the watch with UNAVAILABLE; the second starts
        // empty on the same port, its revisions from the bottom again: the
        // stream's position means nothing there, so it must resync.
        await first.shutdown();
        const second = await daemons.start(first.port);
        const resync = asSnapshot((await it.next()).value as WatchItem);
        expect(resync.resync).to.equal(true);
        expect(resync.tableUid).to.not.equal(two.tableUid);
        expect(resync.sessions).to.deep.equal([]);
        // Told once of each, however many calls failed between: the call the
        // second daemon refused (another history) is no resumption; the one from 0 is.
        expect(told).to.deep.equal(["reconnecting SHUTTING_DOWN", "resumed 0"]);
        // Writes go through a fresh channel: `c`'s may still be backing off from the refused connects.
        const writer = daemons.client(second.address);
        const written = await writer.register({ projectPath: "/r2/0" });
        expect(summary(await take(it, 1))).to.deep.equal([[EventType.EVENT_TYPE_REGISTERED, written.id, written.revision]]);
        expect(stream.lastRevision).to.equal(written.revision);
        expect(stream.tableUid).to.equal(written.tableUid);
      } finally {
        stream.close();
      }
    });
  });
});
