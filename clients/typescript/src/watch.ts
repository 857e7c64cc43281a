/**
 * Watch as an async iterable. Each WatchStream owns at most one grpc-js call
 * at a time; with `autoResume` it opens the next one itself, from where the
 * consumer is, so a consumer sees one ordered feed across reconnects:
 * transient failures and WATCHER_TOO_SLOW resume from `lastRevision + 1`
 * with the table_uid of that revision, and a lost position (compacted
 * history, or a table whose history started over: a restarted daemon, a
 * table made again, a wiped etcd) becomes a fresh snapshot marked
 * `resync: true`.
 */
import { type ClientReadableStream, type ServiceError, status } from "@grpc/grpc-js";
import type { EventType, Session, WatchResponse } from "./gen/sessionregistry/v1/session_registry.js";
import {
  ErrorReason,
  fromServiceError,
  HistoryChangedError,
  RevisionCompactedError,
  SessionRegistryError,
  WatcherTooSlowError,
} from "./errors.js";

/** One item of a watch: the snapshot (first, when watching from 0 or after a resync) or one event. */
export type WatchItem =
  | {
      kind: "snapshot";
      /** The table revision of the snapshot. */
      revision: number;
      /** Every session in the table, oldest first. */
      sessions: Session[];
      /**
       * True when this snapshot replaces the consumer's state after a resync
       * (autoResume only): drop every session you held and keep these.
       */
      resync: boolean;
      /** The history `revision` belongs to (see Table.tableUid). */
      tableUid: string;
    }
  | {
      kind: "event";
      /** The table revision of this change. */
      revision: number;
      /** The history `revision` belongs to. */
      tableUid: string;
      type: EventType;
      /** The session after the change; for REMOVED and EXPIRED, its last state. */
      session: Session;
    };

export interface WatchOptions {
  /** The table to watch; default `default`. */
  table?: string;
  /** 0 (default): a snapshot first, then events. N > 0: every event with revision >= N, no snapshot. */
  startRevision?: number;
  /**
   * With `startRevision` N > 0: the `tableUid` N belongs to (a position the
   * consumer kept: `lastRevision + 1` and `tableUid` of an earlier stream).
   * If the table's history is another one now, the watch fails with
   * TableUidMismatchError, or resyncs with `autoResume`.
   */
  tableUid?: string;
  /** Reconnect after transient failures and resync after lost positions instead of throwing. Default false. */
  autoResume?: boolean;
  /** Delay between reconnects: `initialMs` (default 100) doubling up to `maxMs` (default 5000), with jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Aborting ends the iteration cleanly, like close(). */
  signal?: AbortSignal;
  /**
   * With `autoResume`: told when the watch lost its call and will reconnect,
   * and when a new call is up again, e.g. to tell a person why the feed
   * paused. Throwing from it is not caught.
   */
  onReconnect?: (event: WatchReconnectEvent) => void;
}

/** What autoResume is doing, for WatchOptions.onReconnect. */
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
      /** The revision the new call continues from (lastRevision + 1), or 0 when it starts over with a snapshot (a resync). */
      revision: number;
    };

/** A live watch: iterate it once with `for await`; `break` or close() cancels the call. */
export interface WatchStream extends AsyncIterable<WatchItem> {
  /** Cancels the call; the iteration ends cleanly (no error). Idempotent. */
  close(): void;
  /** The revision of the last item yielded; 0 before any. */
  readonly lastRevision: number;
  /** The history `lastRevision` belongs to; the `tableUid` option (or "") before any item. Keep both to resume later. */
  readonly tableUid: string;
}

/** Opens one Watch call from `startRevision` of history `tableUid` ("": unchecked); throws if the client is closed. */
export type OpenWatchCall = (startRevision: number, tableUid: string) => ClientReadableStream<WatchResponse>;

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

/** What autoResume does after an error. */
function recovery(err: SessionRegistryError): "resync" | "retry" | "throw" {
  // The position is gone from the history, or belongs to another one: only a new snapshot is the truth.
  if (err instanceof RevisionCompactedError || err instanceof HistoryChangedError) return "resync";
  // The daemon delivered every event before resume_revision, which is where
  // the next call starts: nothing is lost, and no snapshot is needed unless
  // that revision has been compacted meanwhile (REVISION_COMPACTED next).
  if (err instanceof WatcherTooSlowError) return "retry";
  // The watcher limit is worth waiting out (other watchers end); any other
  // exhaustion (e.g. a snapshot above the message size limit) would fail the
  // same way on every reconnect.
  if (err.code === status.RESOURCE_EXHAUSTED) {
    return err.reason === ErrorReason.WATCHER_LIMIT_REACHED ? "retry" : "throw";
  }
  return TRANSIENT_CODES.has(err.code) ? "retry" : "throw";
}

export class WatchStreamImpl implements WatchStream {
  private last = 0;
  private uid: string;
  private stopped = false;
  private iterated = false;
  private finished = false;
  private current: WatchCall | undefined;
  /** Wakes a pending backoff sleep when the stream is closed. */
  private wakeSleep: (() => void) | undefined;
  private readonly startRevision: number;
  private readonly autoResume: boolean;
  private readonly initialMs: number;
  private readonly maxMs: number;
  private readonly signal: AbortSignal | undefined;
  private readonly onReconnect: ((event: WatchReconnectEvent) => void) | undefined;
  private readonly onAbort = () => this.close();

  constructor(
    private readonly open: OpenWatchCall,
    options: WatchOptions,
    /** Called when the iteration starts, and once when the stream is finished, however it ends. */
    private readonly hooks: { onStart(stream: WatchStreamImpl): void; onFinish(stream: WatchStreamImpl): void },
  ) {
    this.startRevision = options.startRevision ?? 0;
    this.uid = options.tableUid ?? "";
    this.autoResume = options.autoResume ?? false;
    this.initialMs = positive(options.backoff?.initialMs, DEFAULT_BACKOFF_INITIAL_MS, "backoff.initialMs");
    this.maxMs = Math.max(this.initialMs, positive(options.backoff?.maxMs, DEFAULT_BACKOFF_MAX_MS, "backoff.maxMs"));
    this.signal = options.signal;
    this.onReconnect = options.onReconnect;
    if (this.signal?.aborted) this.stopped = true;
    else this.signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  get lastRevision(): number {
    return this.last;
  }

  get tableUid(): string {
    return this.uid;
  }

  close(): void {
    if (this.stopped) return;
    this.stopped = true;
    this.current?.cancel();
    this.wakeSleep?.();
    // Now rather than when the loop notices: a loop that never calls next()
    // again must still let go of the signal and the client.
    this.finish();
  }

  [Symbol.asyncIterator](): AsyncIterator<WatchItem> {
    if (this.iterated) throw new TypeError("a WatchStream can be iterated only once");
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

  private async *run(): AsyncGenerator<WatchItem, void, undefined> {
    // Where the next call starts: the original start until something is
    // yielded, then lastRevision + 1; 0 while a resync is pending.
    let nextStart = this.startRevision;
    let resyncPending = false;
    let attempt = 0;
    // Set while a reconnect has been announced and no new call is up yet.
    let reconnecting = false;
    try {
      while (!this.stopped) {
        let call: WatchCall;
        const from = nextStart;
        const established = () => {
          if (!reconnecting || this.stopped) return;
          reconnecting = false;
          this.onReconnect?.({ kind: "resumed", revision: from });
        };
        try {
          call = new WatchCall(this.open(nextStart, nextStart === 0 ? "" : this.uid), established);
        } catch (err) {
          // grpc-js throws synchronously on a closed channel.
          throw err instanceof SessionRegistryError ? err : new SessionRegistryError({ code: status.CANCELLED, details: errorText(err) });
        }
        this.current = call;
        let failure: SessionRegistryError | undefined;
        try {
          for (;;) {
            const next = await call.next();
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may have run during the await
            if (this.stopped) return;
            if (next.kind === "end") {
              failure = next.error;
              break;
            }
            const item = toItem(next.message, resyncPending);
            if (item === undefined) continue; // a message kind this SDK version does not know
            attempt = 0;
            resyncPending = false;
            nextStart = item.revision + 1;
            this.last = item.revision;
            this.uid = item.tableUid;
            yield item;
            // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the consumer may have stopped the watch
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
        if (failure !== undefined) {
          const action = recovery(failure);
          if (action === "throw") throw failure;
          if (action === "resync") {
            resyncPending = true;
            nextStart = 0;
          }
        }
        const delayMs = this.backoffDelay(attempt++);
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- stop() may have run while the call was open
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

type CallResult = { kind: "message"; message: WatchResponse } | { kind: "end"; error: SessionRegistryError | undefined };

/**
 * One grpc-js Watch call turned into a pull interface with a bounded queue.
 * grpc-js emits 'status' (and 'error') as soon as the trailers arrive, while
 * messages may still sit in the readable's buffer; the call counts as over
 * only when both the status and 'end' (every message delivered) were seen, so
 * the error comes after the last event, never before it.
 */
class WatchCall {
  private readonly queue: WatchResponse[] = [];
  private error: ServiceError | undefined;
  private gotStatus = false;
  private ended = false;
  private paused = false;
  private cancelled = false;
  private waiter: (() => void) | undefined;

  constructor(
    private readonly call: ClientReadableStream<WatchResponse>,
    /** Called (once is enough) when the server has taken the call: its headers or a first message arrived. */
    established: () => void = () => {},
  ) {
    // The daemon sends its headers once the watch is set up, before any message.
    call.on("metadata", () => established());
    call.on("data", (message: WatchResponse) => {
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

  async next(): Promise<CallResult> {
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

function toItem(message: WatchResponse, resync: boolean): WatchItem | undefined {
  const kind = message.kind;
  switch (kind?.$case) {
    case "snapshot":
      return { kind: "snapshot", revision: message.revision, tableUid: message.tableUid, sessions: kind.value.sessions, resync };
    case "event": {
      const session = kind.value.session;
      if (session === undefined) {
        throw new SessionRegistryError({ code: status.INTERNAL, details: "watch event is missing session" });
      }
      return { kind: "event", revision: message.revision, tableUid: message.tableUid, type: kind.value.type, session };
    }
    default:
      return undefined;
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
