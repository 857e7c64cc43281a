/**
 * A server stream kept open: read it, and when it drops, open it again after
 * a backoff (doubling from 250 ms to 5 s), or at once when asked (the
 * network came back, the tab is visible again). What a stream's messages
 * mean, and which failures stop it for good, are the subclass's. Free of
 * the DOM.
 */
import { Code, failure, type Failure } from "./failure.js";

export type FeedState =
  /** Waiting for the first message of a stream. */
  | { kind: "connecting" }
  /** Streaming: what the feed holds is current. */
  | { kind: "live" }
  /** The stream dropped; `retryAt` (epoch ms) is the next attempt. What the feed holds may be stale. */
  | { kind: "disconnected"; retryAt: number; failure: Failure }
  /** The daemon refused for good (table deleted, token missing or refused): the feed stops. */
  | { kind: "stopped"; failure: Failure };

/** What to do after a stream failed: open it again at once, after the backoff, or never. */
export type Recovery = "again" | "backoff" | "stop";

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;

export abstract class LiveStream<M> {
  state: FeedState = { kind: "connecting" };
  private readonly abort = new AbortController();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    /** Called after every change of what the feed holds or of its state. */
    protected readonly changed: () => void,
  ) {}

  stop(): void {
    this.abort.abort();
    clearTimeout(this.retryTimer);
    this.wake?.();
  }

  /** Retries now instead of at the backoff's time (the user asked, or the network came back). */
  retryNow(): void {
    this.wake?.();
  }

  /** Opens the next stream. */
  protected abstract open(signal: AbortSignal): AsyncIterable<M>;
  /** Takes one message in. */
  protected abstract apply(message: M): void;
  /** What a failure means; a subclass that sets its position back (to start over) does it here. */
  protected abstract recover(f: Failure): Recovery;
  /** Drops everything held (the feed stopped for good). */
  protected abstract forget(): void;

  /** Starts reading; a subclass calls it once its fields are set. */
  protected start(): void {
    void this.run();
  }

  /** Read through a call: the checker would take the loop's test as still holding after an await. */
  private stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private set(state: FeedState): void {
    this.state = state;
    this.changed();
  }

  private async run(): Promise<void> {
    let delay = RETRY_FIRST_MS;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      try {
        for await (const message of this.open(signal)) {
          this.apply(message);
          delay = RETRY_FIRST_MS;
          if (this.state.kind !== "live") this.state = { kind: "live" };
          this.changed();
        }
        // The daemon ended the stream (it is shutting down): open it again as after a drop.
        if (this.stopped()) return;
        await this.backoff(delay, { code: Code.Unavailable, reason: "", metadata: {}, message: "the stream ended" });
      } catch (err) {
        if (this.stopped()) return;
        const f = failure(err);
        const recovery = this.recover(f);
        if (recovery === "again") continue;
        if (recovery === "stop") {
          this.forget();
          this.set({ kind: "stopped", failure: f });
          return;
        }
        await this.backoff(delay, f);
      }
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  private backoff(ms: number, f: Failure): Promise<void> {
    this.set({ kind: "disconnected", retryAt: Date.now() + ms, failure: f });
    return new Promise((resolve) => {
      this.wake = () => {
        clearTimeout(this.retryTimer);
        this.wake = undefined;
        resolve();
      };
      this.retryTimer = setTimeout(this.wake, ms);
    });
  }
}

/** The failures no new stream would fix: the request, the token, or what it names. */
export function refusedForGood(f: Failure): boolean {
  return f.code === Code.Unauthenticated || f.code === Code.PermissionDenied || f.code === Code.InvalidArgument;
}
