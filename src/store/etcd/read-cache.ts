/**
 * The etcd store's read cache: Lookup, List, GetTable and ListTables
 * answered from a Mirror (mirror.ts) of the store's keys, fed by one etcd
 * watch of the prefix, and still linearizable: a write acknowledged by any
 * daemon is seen by every read that starts after the acknowledgement.
 *
 * Loading. On first use, one Range of the prefix (in pages, all at the
 * revision R0 of the first), then one watch of the prefix from R0 + 1. The
 * mirror applies the watch's responses in order; `applied` (A) is the last
 * revision applied. Until the mirror is loaded, and whenever it is lost
 * (the watch disconnected, cancelled by etcd for a compaction, etcd's
 * revisions going back after a wipe), reads go to etcd as without the
 * cache, and the mirror is loaded again from a fresh Range.
 *
 * Freshness. A read answers from the mirror only once A >= R, where R is the
 * revision of a linearizable read of etcd (a probe: one key, count only)
 * sent after the read began. Any write acknowledged before the read began
 * has a revision <= R, so the mirror holds it. Probes are shared: a probe
 * leaves at the end of the event loop's turn, with every read that arrived
 * before; one is out at a time, and the reads that arrive meanwhile wait
 * for the next (the one out may have been answered before they began), so
 * a burst of reads costs one probe per round trip, not one per read. A
 * probe goes over an HTTP/2 connection of its own rather than through
 * etcd3 (revision-probe.ts; with etcd credentials, through etcd3, which
 * holds the token): its cost, divided by the batch, is what each cached
 * read pays.
 *
 * Catching up. The watch hears only of the prefix's keys; etcd's revision
 * also moves for other keys on the same etcd (other prefixes, other
 * programs), and no event of ours ever reaches such an R. etcd's watch
 * progress request is made for this, but not sound on the etcd 3.4.23 this
 * project runs: before 3.4.25 its answer is sent apart from the events
 * still queued for the stream, so it can announce a revision before their
 * delivery (etcd-io/etcd#15220; Kubernetes' consistent reads from cache
 * require 3.4.31 or 3.5.13 for it). So when A < R a moment after the probe,
 * the cache puts its fence key under the prefix instead: that put's
 * revision is above R, and the watch delivers it after every earlier event
 * of the prefix, so once the mirror has applied it, A > R. One fence serves
 * every waiting read whose probe was answered before it was sent. Waits are
 * bounded by the request timeout: past it the mirror is dropped (its watch
 * is presumed stuck) and the read goes to etcd.
 */
import type { IEvent, Watcher } from "etcd3";

import type { EtcdKv } from "./kv.js";
import { prefixEnd } from "./keys.js";
import { Mirror } from "./mirror.js";

/** Keys per page of the Range that loads the mirror. */
const PAGE_KEYS = 5_000;
/** How long a read whose probe is ahead of the mirror waits for the watch before it puts the fence. */
export const FENCE_AFTER_MS = 2;
/** After a failed load, how long reads go to etcd before the next load is tried. */
const RETRY_MS = 1_000;

/** A probe's answer: etcd's revision, and the probe's place in the order answers came in. */
interface Probe {
  revision: number;
  seq: number;
}

/** The probe out or about to leave; reads join it until it is sent. */
interface RunningProbe {
  sent: boolean;
  answer: Promise<Probe>;
}

/** A read waiting for the mirror to reach `revision`. */
interface CatchUp {
  revision: number;
  seq: number;
  settle(ok: boolean, err?: Error): void;
}

type State = "idle" | "loading" | "ready" | "stopped";

const noop = (): void => {};

export class ReadCache {
  private mirror: Mirror;
  private state: State = "idle";
  private watcher: Watcher | undefined;
  /** Moves whenever the mirror is loaded or lost: a read that began on another generation does not use it. */
  private generation = 0;
  /** The last etcd revision the mirror has applied (A). */
  private applied = 0;
  private loading: Promise<void> | undefined;
  /** A failed load: no new one before this time (ms). */
  private retryAt = 0;
  private probing: RunningProbe | undefined;
  private nextProbe: Promise<Probe> | undefined;
  /** Probes answered so far; a probe's seq is its number among them. */
  private answered = 0;
  /** The last fence was sent once the probe with this seq had been answered. */
  private fencedAfter = 0;
  private readonly waiting = new Set<CatchUp>();

  constructor(private readonly kv: EtcdKv) {
    this.mirror = new Mirror(kv.keys);
  }

  /**
   * `answer` applied to the mirror once the mirror holds every write
   * acknowledged before this call; undefined when the mirror cannot serve
   * (not loaded, lost), and the read is to go to etcd. Rejects as a read of
   * etcd does when etcd does not answer the probe, and with what `answer`
   * throws.
   */
  async serve<T>(answer: (mirror: Mirror) => T): Promise<{ value: T } | undefined> {
    if (this.state !== "ready") {
      this.start();
      return undefined;
    }
    const generation = this.generation;
    const probe = await this.probe();
    if (!this.serves(generation)) return undefined;
    if (this.applied < probe.revision && !(await this.catchUp(probe))) return undefined;
    if (!this.serves(generation)) return undefined;
    // Synchronously: nothing is applied between the check and the answer.
    return { value: answer(this.mirror) };
  }

  /** Loads the mirror unless it is; resolves whether it serves reads now. */
  async ready(): Promise<boolean> {
    this.start();
    await this.loading;
    return this.state === "ready";
  }

  /** Sessions the mirror holds (its memory cost is about that many times a session's). */
  get sessions(): number {
    return this.state === "ready" ? this.mirror.sessionCount : 0;
  }

  /** Stops watching; reads go to etcd from now on. Settles once etcd let go of the watch. */
  stop(): Promise<unknown> {
    this.state = "stopped";
    this.generation++;
    for (const waiter of [...this.waiting]) waiter.settle(false);
    return this.unwatch();
  }

  private serves(generation: number): boolean {
    return this.state === "ready" && this.generation === generation;
  }

  /** Starts a load unless one runs, the mirror is ready, or the last failed a moment ago. */
  private start(): void {
    if (this.state !== "idle" || Date.now() < this.retryAt) return;
    this.state = "loading";
    const generation = ++this.generation;
    this.loading = this.load(generation).finally(() => {
      if (this.generation === generation) this.loading = undefined;
    });
  }

  private async load(generation: number): Promise<void> {
    try {
      const mirror = new Mirror(this.kv.keys);
      const { prefix } = this.kv.keys;
      const end = prefixEnd(prefix);
      let key = Buffer.from(prefix, "utf8");
      let at: string | undefined;
      for (;;) {
        const res = await this.kv.client.kv.range({ key, range_end: end, limit: PAGE_KEYS, ...(at === undefined ? {} : { revision: at }) });
        if (this.generation !== generation) return;
        at ??= res.header.revision;
        mirror.load(res.kvs);
        const last = res.kvs[res.kvs.length - 1];
        if (!res.more || last === undefined) break;
        key = Buffer.concat([last.key, Buffer.from([0])]);
      }
      mirror.loaded();
      this.mirror = mirror;
      this.applied = Number(at);
      await this.watch(generation, Number(at) + 1);
      if (this.generation !== generation) return;
      this.state = "ready";
    } catch {
      // etcd unreachable, or the watch refused (e.g. R0 compacted meanwhile): reads go to etcd, and a read a moment later tries again.
      if (this.generation !== generation) return;
      this.retryAt = Date.now() + RETRY_MS;
      this.lose();
    }
  }

  /** Starts the watch from `from`; resolves once etcd has created it. */
  private watch(generation: number, from: number): Promise<void> {
    const watcher = this.kv.client.watch().prefix(this.kv.keys.prefix).startRevision(String(from)).watcher();
    this.watcher = watcher;
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(this.kv.errors.unavailable(`did not set up the read cache's watch within ${this.kv.requestTimeoutMs} ms`)),
        this.kv.requestTimeoutMs,
      );
      // A store closed meanwhile does not wait for it.
      timer.unref();
      watcher.once("connected", () => {
        clearTimeout(timer);
        resolve();
      });
      watcher.on("data", (res) => {
        if (this.watcher === watcher && this.generation === generation) this.applyEvents(res.events);
      });
      // Lost the connection: etcd3 would resume the watch, but etcd may come back wiped; load anew instead.
      watcher.on("disconnected", () => {
        clearTimeout(timer);
        reject(this.kv.errors.unavailable("dropped the read cache's watch"));
        if (this.watcher === watcher && this.state === "ready") this.lose();
      });
      // etcd cancelled the watch (a revision it owed was compacted).
      watcher.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
        if (this.watcher === watcher && this.state === "ready") this.lose();
      });
    });
  }

  private applyEvents(events: readonly IEvent[]): void {
    const last = events[events.length - 1];
    // Responses without events (progress notifications) are not taken as progress: see the file's comment.
    if (last === undefined) return;
    this.mirror.apply(events);
    this.applied = Math.max(this.applied, Number(last.kv.mod_revision));
    for (const waiter of [...this.waiting]) if (waiter.revision <= this.applied) waiter.settle(true);
  }

  /** The mirror is no longer known to follow etcd: reads go to etcd, and waiting ones stop waiting. */
  private lose(): void {
    if (this.state === "stopped") return;
    const wasReady = this.state === "ready";
    this.generation++;
    this.state = "idle";
    this.loading = undefined;
    void this.unwatch();
    for (const waiter of [...this.waiting]) waiter.settle(false);
    // A mirror that served is loaded again at once; a load that failed waits for retryAt.
    if (wasReady) this.start();
  }

  private unwatch(): Promise<unknown> {
    const watcher = this.watcher;
    this.watcher = undefined;
    return watcher === undefined ? Promise.resolve() : watcher.cancel().catch(noop);
  }

  /** The answer of a probe sent after this call. */
  private probe(): Promise<Probe> {
    const running = this.probing;
    if (running === undefined) return this.sendProbe();
    // Not sent yet: it leaves after this read began, so the read may share it.
    if (!running.sent) return running.answer;
    // Sent already: it may have been answered before this read began.
    this.nextProbe ??= running.answer.then(noop, noop).then(() => {
      this.nextProbe = undefined;
      return this.probing?.answer ?? this.sendProbe();
    });
    return this.nextProbe;
  }

  /** A probe, sent once the reads that arrive in this turn of the event loop have joined it. */
  private sendProbe(): Promise<Probe> {
    const probing: RunningProbe = { sent: false, answer: Promise.resolve({ revision: 0, seq: 0 }) };
    probing.answer = new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      probing.sent = true;
      const generation = this.generation;
      const applied = this.applied;
      const revision = await this.kv.revision();
      // Below what the mirror had applied when the probe left: etcd's revisions went back (its data was wiped).
      if (revision < applied && this.generation === generation) this.lose();
      return { revision, seq: ++this.answered };
    });
    this.probing = probing;
    const done = () => {
      if (this.probing === probing) this.probing = undefined;
    };
    probing.answer.then(done, done);
    return probing.answer;
  }

  /** Waits until the mirror has applied `probe.revision`: true once it has, false when the mirror is lost or the wait ran out. */
  private catchUp(probe: Probe): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      const timers: NodeJS.Timeout[] = [];
      const waiter: CatchUp = {
        revision: probe.revision,
        seq: probe.seq,
        settle: (ok, err) => {
          if (!this.waiting.delete(waiter)) return;
          for (const timer of timers) clearTimeout(timer);
          if (err !== undefined) reject(err);
          else resolve(ok);
        },
      };
      this.waiting.add(waiter);
      timers.push(
        setTimeout(() => this.fence(waiter), FENCE_AFTER_MS),
        setTimeout(() => {
          if (!this.waiting.has(waiter)) return;
          // The watch did not deliver what etcd acknowledged long ago: presume it stuck.
          waiter.settle(false);
          this.lose();
        }, this.kv.requestTimeoutMs),
      );
    });
  }

  /** Puts the fence for `waiter`, unless one sent after its probe was answered is on its way. */
  private fence(waiter: CatchUp): void {
    if (!this.waiting.has(waiter) || this.fencedAfter >= waiter.seq) return;
    const covers = this.answered;
    this.fencedAfter = covers;
    this.kv.fence().catch((err: unknown) => {
      // etcd did not take the fence: the reads it was for fail as reads of etcd fail.
      const error = err instanceof Error ? err : new Error(String(err));
      for (const w of [...this.waiting]) if (w.seq <= covers) w.settle(false, error);
    });
  }
}
