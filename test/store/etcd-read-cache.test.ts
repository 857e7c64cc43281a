/**
 * The read cache's freshness rules (src/store/etcd/read-cache.ts), against a
 * stand-in etcd whose probe answers and watch responses the test hands out
 * one by one, so that every interleaving is the test's: a read never uses a
 * probe sent before it began; it waits until the mirror has applied the
 * probe's revision; a fence is put when the watch does not get there, one
 * for every read waiting; a watch lost or etcd's revision going back sends
 * reads to etcd.
 */
import { EventEmitter } from "node:events";

import { expect } from "chai";
import type { IEvent } from "etcd3";

import { encodeTable } from "../../src/store/etcd/codec.js";
import { Keys } from "../../src/store/etcd/keys.js";
import type { EtcdKv } from "../../src/store/etcd/kv.js";
import { FENCE_AFTER_MS, ReadCache } from "../../src/store/etcd/read-cache.js";

const keys = new Keys("/c/");

/** A promise and its resolver. */
function deferred<T>(): { promise: Promise<T>; resolve: (v: T) => void } {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

class FakeWatcher extends EventEmitter {
  cancelled = false;
  cancel(): Promise<void> {
    this.cancelled = true;
    return Promise.resolve();
  }
}

/** The parts of EtcdKv the cache uses, driven by the test. */
class FakeKv {
  readonly keys = keys;
  readonly requestTimeoutMs = 60_000;
  readonly errors = { unavailable: (what: string) => new Error(what) };
  /** Probes sent and not yet answered, oldest first. */
  readonly probes: { resolve: (revision: number) => void }[] = [];
  fences = 0;
  watcher: FakeWatcher | undefined;
  /** The revision the load's Range reads at, and what it holds: table `t`. */
  loadRevision = 10;

  readonly client = {
    kv: {
      range: () =>
        Promise.resolve({
          header: { revision: String(this.loadRevision) },
          more: false,
          kvs: [
            {
              key: Buffer.from(keys.tableMeta("t")),
              value: Buffer.from(encodeTable({ v: 1, maxSessions: 5, createTime: 1, uid: "u" })),
              create_revision: "2",
              mod_revision: "2",
            },
            { key: Buffer.from(keys.rev("t")), value: Buffer.from(""), create_revision: "2", mod_revision: "2" },
          ],
        }),
    },
    watch: () => {
      const builder = {
        prefix: () => builder,
        startRevision: () => builder,
        watcher: () => {
          const w = new FakeWatcher();
          this.watcher = w;
          setImmediate(() => w.emit("connected", {}));
          return w;
        },
      };
      return builder;
    },
  };

  revision(): Promise<number> {
    const d = deferred<number>();
    this.probes.push({ resolve: d.resolve });
    return d.promise;
  }

  fence(): Promise<void> {
    this.fences++;
    return Promise.resolve();
  }

  /** Answers the oldest probe with `revision`. */
  answer(revision: number): void {
    const probe = this.probes.shift();
    if (probe === undefined) throw new Error("no probe in flight");
    probe.resolve(revision);
  }

  /** A watch response: a put of table `t`'s `rev` key at `revision`. */
  deliver(revision: number): void {
    const kv = { key: Buffer.from(keys.rev("t")), value: Buffer.from(""), create_revision: "2", mod_revision: String(revision) };
    this.watcher!.emit("data", { events: [{ type: "Put", kv } as unknown as IEvent] });
  }
}

/** Lets every callback that is ready run (promise chains, setImmediate). */
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** Tracks a read: whether it has answered, and with what table revision (undefined: sent to etcd). */
function track(cache: ReadCache) {
  const state: { done: boolean; revision: number | undefined } = { done: false, revision: undefined };
  const promise = cache
    .serve((m) => m.getTable("t").revision)
    .then((r) => {
      state.done = true;
      state.revision = r?.value;
    });
  return { state, promise };
}

describe("etcd read cache: freshness", () => {
  let kv: FakeKv;
  let cache: ReadCache;

  beforeEach(async () => {
    kv = new FakeKv();
    cache = new ReadCache(kv as unknown as EtcdKv);
    expect(await cache.ready()).to.equal(true);
  });

  afterEach(() => cache.stop());

  it("sends reads to etcd until the mirror is loaded", async () => {
    const cold = new ReadCache(kv as unknown as EtcdKv);
    expect(await cold.serve(() => 1)).to.equal(undefined);
    expect(await cold.ready()).to.equal(true);
    await cold.stop();
  });

  it("answers once a probe sent after the read began is no newer than the mirror", async () => {
    const read = track(cache);
    await settle();
    expect(kv.probes).to.have.length(1);
    kv.answer(10);
    await read.promise;
    expect(read.state.revision).to.equal(2);
  });

  it("never lets a read use a probe sent before it began: it waits for the next one", async () => {
    const first = track(cache);
    await settle();
    // A write lands at 11 (the mirror hears of it), then a read begins while the first probe is out.
    kv.deliver(11);
    const second = track(cache);
    await settle();
    expect(kv.probes).to.have.length(1);
    kv.answer(10);
    await first.promise;
    await settle();
    expect(second.state.done, "answered by a probe sent before it began").to.equal(false);
    // The next probe went out for it (and for any read that joined meanwhile).
    expect(kv.probes).to.have.length(1);
    kv.answer(11);
    await second.promise;
    expect(second.state.revision).to.equal(11);
  });

  it("waits until the mirror has applied the probe's revision", async () => {
    const read = track(cache);
    await settle();
    kv.answer(12);
    await settle();
    expect(read.state.done).to.equal(false);
    kv.deliver(11);
    await settle();
    expect(read.state.done, "answered below the probe's revision").to.equal(false);
    kv.deliver(12);
    await read.promise;
    expect(read.state.revision).to.equal(12);
  });

  it("puts one fence for the reads that wait, when the watch does not reach the probe's revision", async () => {
    const reads = [track(cache), track(cache), track(cache)];
    await settle();
    // One probe for all three.
    expect(kv.probes).to.have.length(1);
    kv.answer(20);
    await settle();
    // Every read's fence timer has fired by then (Node runs timers in order of their due time).
    await new Promise((resolve) => setTimeout(resolve, 2 * FENCE_AFTER_MS));
    expect(kv.fences).to.equal(1);
    // The fence's own event, above every probe answered before it.
    kv.deliver(21);
    await Promise.all(reads.map((r) => r.promise));
    expect(kv.fences).to.equal(1);
    for (const r of reads) expect(r.state.revision).to.equal(21);
  });

  it("sends reads to etcd once the watch is lost, and loads again", async () => {
    const read = track(cache);
    await settle();
    kv.answer(15);
    await settle();
    const lost = kv.watcher!;
    lost.emit("disconnected", new Error("gone"));
    await read.promise;
    expect(read.state).to.deep.equal({ done: true, revision: undefined });
    expect(lost.cancelled).to.equal(true);
    expect(await cache.ready()).to.equal(true);
    expect(kv.watcher).not.to.equal(lost);
  });

  it("drops the mirror when etcd's revision goes back (etcd wiped)", async () => {
    kv.deliver(30);
    const read = track(cache);
    await settle();
    kv.answer(5);
    await read.promise;
    expect(read.state).to.deep.equal({ done: true, revision: undefined });
  });
});
