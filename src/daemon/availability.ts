/**
 * Follows whether the store can serve, for a store that can be unreachable
 * (etcd): every `intervalMs` it runs `check` (a cheap read with a short
 * deadline) and reports each change, so that health turns NOT_SERVING while
 * etcd is away and SERVING once it is back, with no one restarting the
 * daemon. One check at a time; stop() waits for the running one.
 */
import type { Logger } from "./logger.js";

export interface AvailabilityMonitorOptions {
  /** Resolves when the store serves; rejects when it does not. */
  check: () => Promise<void>;
  /** Called with the new state on every change (and not otherwise). */
  onChange: (available: boolean) => void;
  /** The state before the first check. */
  initial: boolean;
  intervalMs?: number;
  log: Logger;
}

export const DEFAULT_PROBE_INTERVAL_MS = 1_000;

export class AvailabilityMonitor {
  private available: boolean;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly intervalMs: number;

  constructor(private readonly options: AvailabilityMonitorOptions) {
    this.available = options.initial;
    this.intervalMs = options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.schedule();
  }

  get isAvailable(): boolean {
    return this.available;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running;
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.running = this.tick().finally(() => {
        this.running = undefined;
        this.schedule();
      });
    }, this.intervalMs);
  }

  private async tick(): Promise<void> {
    let available: boolean;
    let error: unknown;
    try {
      await this.options.check();
      available = true;
    } catch (err) {
      available = false;
      error = err;
    }
    if (this.stopped || available === this.available) return;
    this.available = available;
    if (available) this.options.log.info({}, "the store is reachable again; serving");
    else this.options.log.warn({ err: error }, "the store is unreachable; health reports NOT_SERVING until it returns");
    this.options.onChange(available);
  }
}
