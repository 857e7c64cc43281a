/**
 * Tells the logs and the metrics what the memory budget did. Giving memory
 * back and refusing writes can happen on every write while the budget is
 * full, so the log gets one line per interval with the counts, not one per
 * event; metrics count every one.
 */
import type { BudgetObserver, MemoryBudget } from "../core/budget.js";
import type { Logger } from "../core/logger.js";
import type { Metrics } from "./metrics.js";

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
