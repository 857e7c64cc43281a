/**
 * The daemon's memory budget: one limit, in bytes, over what clients can make
 * it hold. Three kinds of holdings count against it:
 *
 * - sessions: the live sessions and the write results remembered by
 *   request_id. They are the registry's state and are never given back: a
 *   write that would take them past their share (SESSION_SHARE of the
 *   budget) is refused with MEMORY_BUDGET_REACHED, and reads go on.
 * - history: the events each table keeps for Watch resumption.
 * - queues: the messages waiting to be sent to watchers that read slower
 *   than the table changes.
 *
 * History and queues can be given back. When a charge takes the total past
 * the budget, the larger of the two gives back first (a little more than
 * the excess, so that a full budget is not reclaimed on every write): the
 * history drops its oldest events (a watch resuming before them gets
 * REVISION_COMPACTED and resyncs), the queues end the watcher with the most
 * queued (WATCHER_TOO_SLOW, resumable). Sessions take at most
 * SESSION_SHARE, so watch traffic always has the rest.
 *
 * Sizes are upper estimates of the heap a thing takes (strings counted at two
 * bytes per UTF-16 unit, fixed overheads per object), kept by the code that
 * holds it: charged when added, released when dropped. Whatever is shared
 * (a session in the table and in its history) is counted by each holder.
 */
import type { Session, WatchEvent } from "./model.js";

export type BudgetKind = "sessions" | "history" | "queues";

export const BUDGET_KINDS: readonly BudgetKind[] = ["sessions", "history", "queues"];

/** The part of the budget sessions may take; history and queues always have the rest. */
export const SESSION_SHARE = 0.75;

/** A holder that can give memory back. */
export interface Reclaimer {
  /**
   * Frees about `bytes` (more is fine), releasing what it frees from the
   * budget, and returns how many items (events, watchers) it dropped.
   */
  reclaim(bytes: number): number;
}

/** Told when the budget gives memory back or refuses a write (metrics, logs). */
export interface BudgetObserver {
  /** `kind` gave back `bytes` in `items` events dropped or watchers ended. */
  reclaimed(kind: "history" | "queues", bytes: number, items: number): void;
  refused(neededBytes: number): void;
}

export class MemoryBudget {
  private readonly used: Record<BudgetKind, number> = { sessions: 0, history: 0, queues: 0 };
  private readonly reclaimers: Record<"history" | "queues", Set<Reclaimer>> = { history: new Set(), queues: new Set() };
  private reclaiming = false;
  observer: BudgetObserver | undefined;

  /** `limit` in bytes; Infinity for none (tests, embedding). */
  constructor(readonly limit: number) {}

  /** Bytes in use by `kind`, or by every kind. */
  usage(kind?: BudgetKind): number {
    return kind === undefined ? this.used.sessions + this.used.history + this.used.queues : this.used[kind];
  }

  /** The most sessions may hold. */
  get sessionLimit(): number {
    return this.limit * SESSION_SHARE;
  }

  addReclaimer(kind: "history" | "queues", reclaimer: Reclaimer): () => void {
    this.reclaimers[kind].add(reclaimer);
    return () => this.reclaimers[kind].delete(reclaimer);
  }

  /**
   * Whether sessions may grow by `bytes` (a write's new state). Writes check
   * it before they change anything; a refused write changes nothing.
   */
  admits(bytes: number): boolean {
    if (bytes <= 0 || this.used.sessions + bytes <= this.sessionLimit) return true;
    this.observer?.refused(bytes);
    return false;
  }

  /** Counts `bytes` more of `kind`; past the budget, history and queues give back. */
  charge(kind: BudgetKind, bytes: number): void {
    this.used[kind] += bytes;
    if (bytes > 0 && this.usage() > this.limit) this.relieve();
  }

  release(kind: BudgetKind, bytes: number): void {
    this.used[kind] -= bytes;
  }

  /**
   * Reclaims, from the larger of history and queues first, until the total
   * is under the budget by 1/32 of it or nothing is left to give. Releases
   * happen inside the reclaimers; a charge made meanwhile starts no second round.
   */
  private relieve(): void {
    if (this.reclaiming) return;
    this.reclaiming = true;
    try {
      const target = this.limit - this.limit / 32;
      while (this.usage() > target) {
        const before = this.usage();
        const first = this.used.history >= this.used.queues ? "history" : "queues";
        if (!this.reclaimFrom(first, target)) this.reclaimFrom(first === "history" ? "queues" : "history", target);
        if (this.usage() >= before) break;
      }
    } finally {
      this.reclaiming = false;
    }
  }

  /** Whether `kind`'s reclaimers gave anything back. */
  private reclaimFrom(kind: "history" | "queues", target: number): boolean {
    const before = this.usage();
    for (const reclaimer of this.reclaimers[kind]) {
      const was = this.usage();
      if (was <= target) break;
      const items = reclaimer.reclaim(was - target);
      if (items > 0) this.observer?.reclaimed(kind, was - this.usage(), items);
    }
    return this.usage() < before;
  }
}

/** A budget without a limit. */
export function unlimitedBudget(): MemoryBudget {
  return new MemoryBudget(Infinity);
}

const OBJECT_BYTES = 64;
const SESSION_OBJECT_BYTES = 320;
const MAP_ENTRY_BYTES = 48;

function stringBytes(s: string): number {
  return 24 + 2 * s.length;
}

/** An upper estimate of a session's heap size (its table uid is shared and not counted). */
export function sessionBytes(session: Session): number {
  let n = SESSION_OBJECT_BYTES + stringBytes(session.id) + stringBytes(session.name) + stringBytes(session.projectPath);
  for (const [key, value] of session.metadata) n += MAP_ENTRY_BYTES + stringBytes(key) + stringBytes(value);
  return n;
}

/**
 * An upper estimate of a watch event's size, or of a watch message that
 * carries it; `sessionSize` when the caller has its session's already.
 */
export function eventBytes(event: WatchEvent, sessionSize = sessionBytes(event.session)): number {
  return OBJECT_BYTES + sessionSize;
}
