/**
 * What Watch and WatchTables share in this SDK: one grpc-js server stream
 * at a time, read through a bounded queue (StreamCall), and with
 * `autoResume` the next one opened after a backoff, so that a consumer
 * iterates one feed across reconnects. What a message means, where the next
 * call starts and which failures are worth a new call are the subclass's
 * (./watch.ts, ./tables-watch.ts).
 */
import { type ClientReadableStream, type ServiceError, status } from "@grpc/grpc-js";

import { ErrorReason, fromServiceError, SessionRegistryError } from "./errors.js";

/** The options every resuming stream takes. */
export interface ResumeOptions {
  /** Reconnect after transient failures (and, for Watch, resync after lost positions) instead of throwing. Default false. */
  autoResume?: boolean;
  /** Delay between reconnects: `initialMs` (default 100) doubling up to `maxMs` (default 5000), with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Aborting ends the iteration cleanly, like close(). */
  signal?: AbortSignal;
  /**
   * With `autoResume`: told when the stream lost its call and will reconnect,
   * and when a new call is up again, e.g. to tell a person why the feed
   * paused. Throwing from it is not caught.
   */
  onReconnect?: (event: WatchReconnectEvent) => void;
}

/** What autoResume is doing, for the `onReconnect` option. */
export type WatchReconnectEvent =
  | {
      kind: "reconnecting";
      /** Why the call ended; undefined when the daemon ended it without an error. */
      error: SessionRegistryError | undefined;
      /** The pause before the next call, in milliseconds. */
      delayMs: number;
    }
  | {
      kind: "resumed";
      /** The revision the new call continues from (lastRevision + 1), or 0 when it starts over with a snapshot (a resync, and always for WatchTables). */
      revision: number;
    };

/** Called when the iteration starts, and once when the stream is finished, however it ends. */
export interface ResumingHooks {
  onStart(stream: { close(): void }): void;
  onFinish(stream: { close(): void }): void;
}

/**
 * Above this many messages waiting for the consumer, the call is paused: the
 * HTTP/2 window then fills and the server sees the back-pressure (and ends the
 * watcher with WATCHER_TOO_SLOW if it stays behind), instead of this process
 * buffering without bound.
 */
export const WATCH_HIGH_WATER_MARK = 64;

const DEFAULT_BACKOFF_INITIAL_MS = 100;
const DEFAULT_BACKOFF_MAX_MS = 5_000;

/** Codes after which a reconnect may succeed; everything else is thrown even with autoResume. */
const TRANSIENT_CODES: ReadonlySet<status> = new Set([
  status.UNAVAILABLE,
  status.CANCELLED,
  status.INTERNAL,
  status.UNKNOWN,
  status.DEADLINE_EXCEEDED,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
]);

/** Whether a new call may succeed where this one failed, for a stream with no position to lose. */
export function transient(err: SessionRegistryError): boolean {
  // The watcher limit is worth waiting out (other watchers end); any other
  // exhaustion (e.g. a message above the size limit) would fail the same way
  // on every reconnect.
  if (err.code === status.RESOURCE_EXHAUSTED) return err.reason === ErrorReason.WATCHER_LIMIT_REACHED;
  return TRANSIENT_CODES.has(err.code);
}

export abstract class ResumingStream<M, Item> implements AsyncIterable<Item> {
  private stopped = false;
  private iterated = false;
  private finished = false;
  private current: StreamCall<M> | undefined;
  /** Wakes a pending backoff sleep when the stream is closed. */
  private wakeSleep: (() => void) | undefined;
  private readonly autoResume: boolean;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly signal: AbortSignal | undefined;
  private readonly onReconnect: ((event: WatchReconnectEvent) => void) | undefined;
  private readonly onAbort = () => this.close();

  constructor(
    /** What it is called in errors ("a WatchStream"). */
    private readonly what: string,
    options: ResumeOptions,
    private readonly hooks: ResumingHooks,
  ) {
    this.autoResume = options.autoResume ?? false;
    this.initialMs = positive(options.backoff?.initialMs, DEFAULT_BACKOFF_INITIAL_MS, "backoff.initialMs");
    this.maxMs = Math.max(this.initialMs, positive(options.backoff?.maxMs, DEFAULT_BACKOFF_MAX_MS, "backoff.maxMs"));
    this.signal = options.signal;
    this.onReconnect = options.onReconnect;
    if (this.signal?.aborted) this.stopped = true;
    else this.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Opens the next call; throws if the client is closed. */
  protected abstract openCall(): ClientReadableStream<M>;
  /** Where the next call starts, for the `resumed` event. */
  protected abstract resumesAt(): number;
  /** Takes a message in and returns what to yield; undefined: nothing (a kind this SDK version does not know). */
  protected abstract accept(message: M): Item | undefined;
  /** With autoResume, after a failure: open a new call, or throw it. */
  protected abstract recover(err: SessionRegistryError): "retry" | "throw";

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.current?.cancel();
    this.wakeSleep?.();
    // Now rather than when the loop notices: a loop that never calls next()
    // again must still let go of the signal and the client.
    this.finish();
  }

  [Symbol.asyncIterator](): AsyncIterator<Item> {
    if (this.iterated) throw new TypeError(`${this.what} can be iterated only once`);
    this.iterated = true;
    if (!this.stopped) this.hooks.onStart(this);
    return this.run();
  }

  private finish(): void {
    this.stopped = true;
    if (this.finished) return;
    this.finished = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.hooks.onFinish(this);
  }

  private async *run(): AsyncGenerator<Item, void, undefined> {
    let attempt = 0;
    // Set while a reconnect has been announced and no new call is up yet.
    let reconnecting = false;
    try {
      while (!this.stopped) {
        let call: StreamCall<M>;
        const from = this.resumesAt();
        const established = () => {
          if (!reconnecting || this.stopped) return;
          reconnecting = false;
          this.onReconnect?.({ kind: "resumed", revision: from });
        };
        try {
          call = new StreamCall(this.openCall(), established);
        } catch (err) {
          // grpc-js throws synchronously on a closed channel.
          throw err instanceof SessionRegistryError ? err : new SessionRegistryError({ code: status.CANCELLED, details: errorText(err) });
        }
        this.current = call;
        let failure: SessionRegistryError | undefined;
        try {
          for (;;) {
            const next = await call.next();
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run during the await
            if (this.stopped) return;
            if (next.kind === "end") {
              failure = next.error;
              break;
            }
            const item = this.accept(next.message);
            if (item === undefined) continue;
            attempt = 0;
            yield item;
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the consumer may have stopped the stream
            if (this.stopped) return;
          }
        } finally {
          call.cancel();
          this.current = undefined;
        }

        if (!this.autoResume) {
          if (failure !== undefined) throw failure;
          return; // the server ended the stream with OK
        }
        if (failure !== undefined && this.recover(failure) === "throw") throw failure;
        const delayMs = this.backoffDelay(attempt++);
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run while the call was open
        if (!this.stopped && !reconnecting) {
          reconnecting = true;
          this.onReconnect?.({ kind: "reconnecting", error: failure, delayMs });
        }
        await this.sleep(delayMs);
      }
    } finally {
      this.finish();
    }
  }

  /** Exponential with "equal jitter": half the delay fixed, half random, so reconnects spread out. */
  private backoffDelay(attempt: number): number {
    const base = Math.min(this.maxMs, this.initialMs * 2 ** Math.min(attempt, 30));
    return base / 2 + Math.random() * (base / 2);
  }

  private sleep(ms: number): Promise<void> {
    if (this.stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.wakeSleep = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeSleep = done;
    });
  }
}

type CallResult<M> = { kind: "message"; message: M } | { kind: "end"; error: SessionRegistryError | undefined };

/**
 * One grpc-js server-streaming call (Watch, WatchTables) turned into a pull interface with a bounded queue.
 * grpc-js emits 'status' (and 'error') as soon as the trailers arrive, while
 * messages may still sit in the readable's buffer; the call counts as over
 * only when both the status and 'end' (every message delivered) were seen, so
 * the error comes after the last event, never before it.
 */
class StreamCall<M> {
  private readonly queue: M[] = [];
  private error: ServiceError | undefined;
  private gotStatus = false;
  private ended = false;
  private paused = false;
  private cancelled = false;
  private waiter: (() => void) | undefined;

  constructor(
    private readonly call: ClientReadableStream<M>,
    /** Called (once is enough) when the server has taken the call: its headers or a first message arrived. */
    established: () => void = () => {},
  ) {
    // The daemon sends its headers once the watch is set up, before any message.
    call.on("metadata", () => established());
    call.on("data", (message: M) => {
      established();
      this.queue.push(message);
      if (this.queue.length >= WATCH_HIGH_WATER_MARK && !this.paused) {
        this.paused = true;
        call.pause();
      }
      this.wake();
    });
    // Also keeps an 'error' from going unhandled (which would throw).
    call.on("error", (err: ServiceError) => {
      this.error ??= err;
    });
    call.on("status", () => {
      this.gotStatus = true;
      this.wake();
    });
    const onEnd = () => {
      this.ended = true;
      this.wake();
    };
    call.on("end", onEnd);
    call.on("close", onEnd);
  }

  async next(): Promise<CallResult<M>> {
    for (;;) {
      if (this.cancelled) return { kind: "end", error: undefined };
      const message = this.queue.shift();
      if (message !== undefined) {
        if (this.queue.length === 0 && this.paused) {
          this.paused = false;
          this.call.resume();
        }
        return { kind: "message", message };
      }
      if (this.gotStatus && this.ended) {
        return { kind: "end", error: this.error === undefined ? undefined : fromServiceError(this.error) };
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }

  /** Cancels the call (a no-op once it is over) and wakes a pending next(). */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.queue.length = 0;
    this.call.cancel();
    this.wake();
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.();
  }
}

function positive(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!Number.isFinite(value) || value <= 0) throw new TypeError(`watch: ${name} must be a positive number of milliseconds`);
  return value;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
