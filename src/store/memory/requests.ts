/**
 * A memory table's remembered write results by request_id: a retried
 * Register, Update or Remove with the same request_id gets the first
 * result. Bounded in count and in age, and charged to the memory budget.
 */
import type { MemoryBudget } from "../../core/budget.js";
import type { Session } from "../../core/model.js";

/** The most request_ids (of Register, Update and Remove together) a table remembers; past it the oldest are forgotten first. */
export const MAX_REQUEST_IDS_PER_TABLE = 10_000;

/**
 * A table's remembered write results by method and request_id (keys
 * `register:<id>`, `update:<id>`, `remove:<id>`), oldest first (a Map keeps
 * insertion order, and entries are only ever appended with the current time),
 * bounded in count and in age.
 */
export class RequestLog {
  private readonly entries = new Map<string, { result: Session; at: number; bytes: number }>();

  constructor(
    private readonly retentionMs: number,
    private readonly maxEntries: number,
    private readonly budget: MemoryBudget,
  ) {}

  /** What remembering `result` (of `resultSize` bytes) under `key` is charged: the result may outlive its session. */
  static bytesOf(key: string, resultSize: number): number {
    return 64 + 2 * key.length + resultSize;
  }

  get(key: string, now: number): Session | undefined {
    this.prune(now);
    return this.entries.get(key)?.result;
  }

  add(key: string, result: Session, resultSize: number, now: number): void {
    const bytes = RequestLog.bytesOf(key, resultSize);
    this.entries.set(key, { result, at: now, bytes });
    this.budget.charge("sessions", bytes);
    this.prune(now);
  }

  /** Forgets everything (the table is gone). */
  clear(): void {
    for (const e of this.entries.values()) this.budget.release("sessions", e.bytes);
    this.entries.clear();
  }

  private prune(now: number): void {
    for (const [id, e] of this.entries) {
      if (this.entries.size <= this.maxEntries && now - e.at < this.retentionMs) break;
      this.entries.delete(id);
      this.budget.release("sessions", e.bytes);
    }
  }
}
