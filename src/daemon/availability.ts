/**
 * Follows whether the store can serve, for a store that can be unreachable
 * (etcd): every `intervalMs` it runs `check` (a cheap read with a short
 * deadline) and reports each change, so that health turns NOT_SERVING while
 * etcd is away and SERVING once it is back, with no one restarting the
 * daemon. One check at a time; stop() waits for the running one.
 */
import { RegistryError, StoreUnavailableError } from "../core/errors.js";
import type { Logger } from "./logger.js";

export interface AvailabilityMonitorOptions {
  /** Resolves when the store serves; rejects when it does not. */
  check: () => Promise<void>;
  /** Called with the new state on every change (and not otherwise). */
  onChange: (available: boolean) => void;
  /** The state before the first check. */
  initial: boolean;
  /** With `initial` false: why, as storeProblem() words it. */
  initialProblem?: string;
  intervalMs?: number;
  log: Logger;
}

export const DEFAULT_PROBE_INTERVAL_MS = 1_000;

/**
 * Why the store cannot serve, for logs and the ready line: the words of its
 * STORE_UNAVAILABLE error ("etcd at http://127.0.0.1:2379 is unreachable
 * (connection refused)"), never a library's message.
 */
export function storeProblem(err: unknown): string {
  if (err instanceof StoreUnavailableError) return err.detail;
  if (err instanceof RegistryError) return err.message;
  return "the store failed unexpectedly (the debug log has the error)";
}

export class AvailabilityMonitor {
  private available: boolean;
  private why: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;
  private readonly intervalMs: number;

  constructor(private readonly options: AvailabilityMonitorOptions) {
    this.available = options.initial;
    this.why = options.initial ? undefined : (options.initialProblem ?? "the store is unavailable");
    this.intervalMs = options.intervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.schedule();
  }

  get isAvailable(): boolean {
    return this.available;
  }

  /** Why the store is unavailable, as of the change that made it so; undefined while it serves. */
  get problem(): string | undefined {
    return this.why;
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
    if (available) {
      this.why = undefined;
      this.options.log.info({ health: "SERVING" }, "the store is reachable again; health reports SERVING");
    } else {
      this.why = storeProblem(error);
      this.options.log.warn(
        { health: "NOT_SERVING", why: this.why },
        "the store is unavailable; health reports NOT_SERVING until it is back",
      );
      if (!(error instanceof RegistryError)) this.options.log.debug({ err: error }, "store check failed");
    }
    this.options.onChange(available);
  }
}
