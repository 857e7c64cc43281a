/**
 * The daemon's side of the memory budget (src/core/budget.ts): how large it
 * is, and what the logs and metrics hear of it.
 *
 * The budget bounds what the daemon keeps; V8 bounds the heap it runs in
 * (node's --max-old-space-size, by default a share of the machine's
 * memory). A budget the heap cannot hold would end in the crash it is there
 * to prevent, so the default is the smaller of 512 MiB and half the heap,
 * and a larger --memory-budget than the heap less HEAP_RESERVE is refused
 * at start-up.
 *
 * Tells the logs and the metrics what the memory budget did. Giving memory
 * back and refusing writes can happen on every write while the budget is
 * full, so the log gets one line per interval with the counts, not one per
 * event; metrics count every one.
 */
import { getHeapStatistics } from "node:v8";

import type { BudgetObserver, MemoryBudget } from "../core/budget.js";
import { ConfigError } from "./config.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "./metrics.js";

const MIB = 1024 * 1024;
/** The default budget, when the heap has room for it. */
export const DEFAULT_MEMORY_BUDGET = 512 * MIB;
/** Heap the daemon needs besides its budget: its code, connections and requests in flight. */
export const HEAP_RESERVE = 64 * MIB;

/**
 * The budget to run with: `configured` (--memory-budget) if the heap can
 * hold it, else a ConfigError naming both sizes and the way out; without
 * one, the smaller of 512 MiB and half the heap.
 */
export function resolveMemoryBudget(configured: number | undefined, heapLimit = getHeapStatistics().heap_size_limit): number {
  if (configured === undefined) return Math.min(DEFAULT_MEMORY_BUDGET, Math.floor(heapLimit / 2));
  if (configured + HEAP_RESERVE > heapLimit) {
    const mib = (n: number) => Math.ceil(n / MIB);
    throw new ConfigError(
      `--memory-budget ${mib(configured)}MiB does not fit in node's JavaScript heap of ${mib(heapLimit)} MiB (it needs ${mib(HEAP_RESERVE)} MiB besides); ` +
        `lower --memory-budget, or start node with a larger heap: NODE_OPTIONS=--max-old-space-size=${mib(configured + 2 * HEAP_RESERVE)}`,
    );
  }
  return configured;
}

/** At most one budget log line per this many milliseconds. */
export const BUDGET_LOG_INTERVAL_MS = 10_000;

export interface BudgetReport {
  /** Logs what is still pending and stops the timer. */
  stop(): void;
}

export function reportBudget(budget: MemoryBudget, log: Logger, metrics: () => Metrics | undefined): BudgetReport {
  const pending = { historyEvents: 0, historyBytes: 0, watchersEnded: 0, queueBytes: 0, refusedWrites: 0 };
  let timer: NodeJS.Timeout | undefined;
  const flush = () => {
    timer = undefined;
    if (pending.historyEvents + pending.watchersEnded + pending.refusedWrites === 0) return;
    log.warn(
      {
        ...pending,
        usedBytes: Math.round(budget.usage()),
        sessionBytes: Math.round(budget.usage("sessions")),
        budgetBytes: budget.limit,
      },
      "memory budget full: gave back history or queues, or refused writes",
    );
    pending.historyEvents = pending.historyBytes = pending.watchersEnded = pending.queueBytes = pending.refusedWrites = 0;
  };
  const schedule = () => {
    if (timer !== undefined) return;
    // The first line at once (an operator sees it when it starts); then at most one per interval.
    flush();
    timer = setTimeout(flush, BUDGET_LOG_INTERVAL_MS);
    timer.unref();
  };
  const observer: BudgetObserver = {
    reclaimed(kind, bytes, items) {
      if (kind === "history") {
        pending.historyEvents += items;
        pending.historyBytes += Math.round(bytes);
      } else {
        pending.watchersEnded += items;
        pending.queueBytes += Math.round(bytes);
      }
      metrics()?.reclaimed(kind, bytes, items);
      schedule();
    },
    refused() {
      pending.refusedWrites++;
      schedule();
    },
  };
  budget.observer = observer;
  return {
    stop() {
      clearTimeout(timer);
      flush();
      budget.observer = undefined;
    },
  };
}
