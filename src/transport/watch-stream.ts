/**
 * The Watch method: one server stream per watch, fed by the Registry through
 * a WatchSink.
 *
 * A store delivers messages synchronously and must never be blocked, so each
 * stream keeps its own bounded queue. grpc-js reports backpressure through
 * `write()` returning false; from then on messages wait in the queue until
 * 'drain'. A watcher whose queue would grow past its limit is ended with
 * RESOURCE_EXHAUSTED (`WATCHER_TOO_SLOW`) and the revision of the first
 * message it was not handed, so that it can resume there with no gap and no
 * duplicate. Everything already handed to grpc-js is still delivered before
 * the status: the stream's trailers follow its writes.
 *
 * The queue is bounded in messages and in estimated bytes, and its bytes
 * are charged to the daemon's memory budget: when the budget is full and
 * the queues hold more of it than the watch history, the watchers with the
 * most queued are ended first, with WATCHER_TOO_SLOW as above.
 *
 * The limits count live messages only. What the store delivers while the
 * watch starts (the snapshot, or the replay of up to a whole table history)
 * arrives in one burst that no client could keep up with; it is bounded by
 * the history size already, and queued in full. Were it counted, every
 * replay longer than the limit would end as too slow, and so would the
 * resumed watch after it.
 *
 * Every way a stream ends (client cancel or disconnect, store end, too slow,
 * rejection, daemon shutdown) goes through WatchStream.finish, which runs
 * once: it cancels the subscription, drops the queue, removes its listeners
 * and counts the call with the status it ended with (CANCELLED when the
 * client ended it).
 */
import { status } from "@grpc/grpc-js";

import { eventBytes, sessionBytes, unlimitedBudget, type MemoryBudget, type Reclaimer } from "../core/budget.js";
import { RegistryError, watcherTooSlow } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { EventType as CoreEventType, Session, WatchEvent as CoreWatchEvent } from "../core/model.js";
import { resolveTable, type Registry } from "../core/registry.js";
import type { WatchSink, WatchSubscription } from "../core/store.js";
import { EventType, type WatchRequest, type WatchResponse } from "../gen/sessionregistry/v1/session_registry.js";
import type { HeaderSource } from "./auth.js";
import { toProtoSession } from "./convert.js";
import { isAuthError, logRejection, outcomeOf, statusSpecOf, type RpcRecorder, type StatusSpec } from "./status.js";
import { clipForLog } from "./log-fields.js";

/**
 * One Watch call as a wire adapter presents it (service.ts for gRPC,
 * connect/ for HTTP): a stream of generated messages (WatchResponse, or
 * WatchTablesResponse for WatchTables) with backpressure, and a way to end
 * it with a status.
 */
export interface WatchCall<M = WatchResponse> {
  /** The decoded WatchRequest, or what the adapter's decoder made of bad bytes (see WatchStreamsOptions.malformed). */
  readonly request: unknown;
  readonly headers: HeaderSource;
  /** The client's address, for the log line of a refused token. */
  peer(): string;
  /** Whether the client ended the call (cancel, disconnect, deadline). */
  isCancelled(): boolean;
  /** Whether nothing more can be sent: the client ended it, or the stream is closed or failed. */
  isClosed(): boolean;
  /** Hands a message to the wire; false when it pushes back: wait for `drain` before the next. */
  write(message: M): boolean;
  /** Sends the response headers now, before any message (where the wire can). */
  sendHeaders(): void;
  /** Ends the stream with this error status, after the messages already written. */
  fail(error: StatusSpec): void;
  /**
   * Calls `gone` once the client has ended the call or the stream cannot go
   * on, and `drain` when write may be called again; returns what stops them.
   */
  listen(handlers: { gone: () => void; drain: () => void }): () => void;
}

/**
 * What ending a stream does once the stream has dropped its own state, for
 * Watch and WatchTables alike: cancels the store's subscription, ends the
 * call with `error`'s status (none when undefined: the client left), and
 * logs and counts how it ended. Never throws.
 */
export function endStream(
  call: WatchCall<unknown>,
  subscription: WatchSubscription | undefined,
  error: unknown,
  { log, metrics, fields }: { log: Logger; metrics: RpcRecorder | undefined; fields: { method: "Watch" | "WatchTables"; table?: string } },
): void {
  try {
    subscription?.cancel();
  } catch (err) {
    log.error({ ...fields, err }, "cancelling the subscription failed");
  }
  if (error !== undefined && !call.isClosed()) {
    try {
      call.fail(statusSpecOf(error, log, fields));
    } catch (err) {
      log.error({ ...fields, err }, "ending the stream failed");
    }
  }
  // Like a unary call's, a watch the client already left counts as CANCELLED, whatever ended it here.
  const outcome = error === undefined || call.isCancelled() ? { code: status.CANCELLED, reason: undefined } : outcomeOf(error);
  log.debug({ ...fields, reason: outcome.reason ?? "CANCELLED" }, "watch ended");
  try {
    metrics?.rpcEnded(fields.method, outcome.code, outcome.reason, undefined);
  } catch (err) {
    log.error({ method: fields.method, err }, "recording metrics failed");
  }
}

const EVENT_TYPES: Readonly<Record<CoreEventType, EventType>> = {
  REGISTERED: EventType.EVENT_TYPE_REGISTERED,
  UPDATED: EventType.EVENT_TYPE_UPDATED,
  REMOVED: EventType.EVENT_TYPE_REMOVED,
  EXPIRED: EventType.EVENT_TYPE_EXPIRED,
};

export interface WatchStreamsOptions {
  /** The most messages one watcher may have waiting (not yet handed to grpc-js) before it is too slow. */
  queueLimit: number;
  /** The most estimated bytes of messages one watcher may have waiting before it is too slow; default: no limit. */
  queueBytes?: number;
  /** What queued messages are charged to; default: unlimited. */
  budget?: MemoryBudget;
  /** The INVALID_ARGUMENT for a request whose bytes did not decode (see codecs.ts); undefined for a decoded one. */
  malformed: (request: unknown) => RegistryError | undefined;
  /** Checks the caller before anything else; throws UNAUTHENTICATED or PERMISSION_DENIED. */
  authorize?: (call: WatchCall) => void;
  /** Hears how each watch ended. */
  metrics?: RpcRecorder;
}

/**
 * Serves Watch calls and knows the open ones, so that shutdown can end them
 * and the memory budget can end the slowest.
 */
export class WatchStreams implements Reclaimer {
  private readonly open = new Set<WatchStream>();
  /** Set by endAll: watches that arrive later are ended with it at once. */
  private closing: RegistryError | undefined;
  private readonly options: WatchStreamsOptions & { budget: MemoryBudget };

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    options: WatchStreamsOptions,
  ) {
    this.options = { ...options, budget: options.budget ?? unlimitedBudget() };
    this.options.budget.addReclaimer("queues", this);
  }

  /** The budget's queue reclaimer: ends the watchers with the most queued until `bytes` are freed. */
  reclaim(bytes: number): number {
    const queued = [...this.open].filter((s) => s.queuedBytes > 0).sort((a, b) => b.queuedBytes - a.queuedBytes);
    let freed = 0;
    let ended = 0;
    for (const stream of queued) {
      if (freed >= bytes) break;
      freed += stream.queuedBytes;
      stream.tooSlow("the daemon's memory budget is full", undefined, true);
      ended++;
    }
    return ended;
  }

  /** Streams not yet ended by this side or the client. */
  get size(): number {
    return this.open.size;
  }

  /** The Watch handler. Never throws. */
  handle(call: WatchCall): void {
    const stream = new WatchStream(call, this.registry, this.log, this.options, (s) => this.open.delete(s));
    this.open.add(stream);
    let denied: { err: unknown } | undefined;
    try {
      this.options.authorize?.(call);
    } catch (err) {
      denied = { err };
    }
    const malformed = this.options.malformed(call.request);
    if (denied !== undefined) {
      stream.reject(denied.err);
    } else if (malformed !== undefined) {
      stream.reject(malformed);
    } else if (this.closing !== undefined) {
      stream.finish(this.closing);
    } else {
      stream.start();
    }
  }

  /** Ends every open watch with `error` (e.g. UNAVAILABLE at shutdown), and every later one too. */
  endAll(error: RegistryError): void {
    this.closing = error;
    for (const stream of [...this.open]) stream.finish(error);
  }
}

/** An event's message, and its estimated size once a watcher has had to queue it. */
interface SharedMessage {
  readonly event: CoreWatchEvent;
  readonly message: WatchResponse;
  bytes: number | undefined;
}

/**
 * One message per event, shared by every watcher the store hands the event
 * to, converted once, sized once and (codecs.ts) encoded once, not once per
 * watcher. A store hands an event to all its watchers in one synchronous
 * loop, so remembering the last one is enough; a cache of every event would
 * live as long as the history keeps them. Messages are never changed once built.
 */
let last: SharedMessage | undefined;

function sharedOf(event: CoreWatchEvent): SharedMessage {
  if (last?.event !== event) {
    last = {
      event,
      message: {
        revision: BigInt(event.revision),
        tableUid: event.session.tableUid,
        kind: { $case: "event", value: { type: EVENT_TYPES[event.type], session: toProtoSession(event.session) } },
      },
      bytes: undefined,
    };
  }
  return last;
}

/** A message waiting to be handed to grpc-js, with what resuming before it would mean. */
interface Pending {
  message: WatchResponse;
  /** The start revision that would deliver this message again: the event's revision, or 0 for the snapshot. */
  resumeRevision: number;
  /** Its estimated size, as charged to the budget. */
  bytes: number;
}

class WatchStream implements WatchSink {
  /** The table as the registry resolves it (empty means `default`), for logs and WATCHER_TOO_SLOW. */
  private readonly table: string;
  private subscription: WatchSubscription | undefined;
  private done = false;
  /** write() returned false: hold messages until 'drain'. */
  private blocked = false;
  /** A FIFO: queue[head] is the oldest waiting message. */
  private queue: Pending[] = [];
  private head = 0;
  /** Until the registry answers, messages are the start-up burst and are not bounded. */
  private starting = true;
  /** How many of the queued messages (the oldest ones) are left of the start-up burst. */
  private burst = 0;
  /** Estimated bytes of the queued messages, all charged to the budget, and of those left of the burst. */
  queuedBytes = 0;
  private burstBytes = 0;

  private readonly queueLimit: number;
  private readonly queueBytes: number;
  private readonly budget: MemoryBudget;
  private readonly metrics: RpcRecorder | undefined;

  private readonly unlisten: () => void;

  constructor(
    private readonly call: WatchCall,
    private readonly registry: Registry,
    private readonly log: Logger,
    options: WatchStreamsOptions & { budget: MemoryBudget },
    private readonly onFinished: (stream: WatchStream) => void,
  ) {
    this.queueLimit = options.queueLimit;
    this.queueBytes = options.queueBytes ?? Infinity;
    this.budget = options.budget;
    this.metrics = options.metrics;
    const table = (call.request as Partial<WatchRequest>).table;
    this.table = clipForLog(resolveTable(typeof table === "string" ? table : ""));
    this.unlisten = call.listen({ gone: () => this.finish(undefined), drain: () => this.flush() });
  }

  start(): void {
    const request = this.call.request as WatchRequest;
    let started: Promise<WatchSubscription>;
    try {
      started = this.registry.watch({ table: request.table, startRevision: request.startRevision, tableUid: request.tableUid }, this);
    } catch (err) {
      // Registry.watch is async and rejects rather than throws; this is for safety only.
      started = Promise.reject(err);
    }
    started.then(
      (subscription) => {
        this.starting = false;
        this.burst = this.queue.length - this.head;
        this.burstBytes = this.queuedBytes;
        if (this.done) {
          // The client left (or the store ended the watch) while it was starting.
          subscription.cancel();
          return;
        }
        this.subscription = subscription;
        // Headers now, not with the first message: a client resuming from a
        // revision may wait long for one, and learns from them that its watch is back.
        this.call.sendHeaders();
        this.log.debug({ method: "Watch", table: this.table, startRevision: String(request.startRevision) }, "watch started");
      },
      (err: unknown) => {
        if (this.done) {
          this.log.debug({ method: "Watch", table: this.table }, "watch ended before the registry answered");
          return;
        }
        this.reject(err);
      },
    );
  }

  /** Ends a watch that never started, logging the rejection. */
  reject(err: unknown): void {
    if (err instanceof RegistryError) {
      const fields = { method: "Watch", table: this.table };
      logRejection(this.log, isAuthError(err) ? { ...fields, peer: this.call.peer() } : fields, err);
    }
    this.finish(err);
  }

  // WatchSink: called by the store, synchronously, in revision order.

  snapshot(sessions: Session[], revision: number, tableUid: string): void {
    this.guarded(() =>
      this.send(
        { revision: BigInt(revision), tableUid, kind: { $case: "snapshot", value: { sessions: sessions.map(toProtoSession) } } },
        0,
        sessions,
      ),
    );
  }

  event(event: CoreWatchEvent): void {
    this.guarded(() => {
      const shared = sharedOf(event);
      this.send(shared.message, event.revision, shared);
    });
  }

  end(error: RegistryError): void {
    this.log.debug({ method: "Watch", table: this.table, reason: error.reason }, "store ended the watch");
    this.finish(error);
  }

  /**
   * Ends the stream, once: with `error` as its status, or (undefined) with
   * none because the call is already over on the client's side.
   */
  finish(error: unknown): void {
    if (this.done) return;
    this.done = true;
    this.queue = [];
    this.head = 0;
    this.burst = 0;
    this.budget.release("queues", this.queuedBytes);
    this.queuedBytes = 0;
    this.burstBytes = 0;
    this.unlisten();
    const subscription = this.subscription;
    this.subscription = undefined;
    this.onFinished(this);
    endStream(this.call, subscription, error, { log: this.log, metrics: this.metrics, fields: { method: "Watch", table: this.table } });
  }

  /**
   * A sink must not throw: the store calls it in the middle of some other
   * call's write. A bug here ends this watch (INTERNAL, logged) and nothing else.
   */
  private guarded(deliver: () => void): void {
    if (this.done) return;
    try {
      deliver();
    } catch (err) {
      this.finish(err);
    }
  }

  /** Ends the watch as too slow, resumable at the oldest message it was not handed (`next` when none is queued). */
  tooSlow(why: string, next?: number, quiet = false): void {
    if (this.done) return;
    const resume = this.head < this.queue.length ? this.queue[this.head]!.resumeRevision : next;
    if (resume === undefined) return;
    const fields = {
      method: "Watch",
      table: this.table,
      resumeRevision: resume,
      queued: this.queue.length - this.head,
      queuedBytes: this.queuedBytes,
      why,
    };
    // Ended by the budget, possibly hundreds at once: the budget's own log line counts them.
    if (quiet) this.log.debug(fields, "watcher too slow");
    else this.log.info(fields, "watcher too slow");
    this.finish(watcherTooSlow(this.table, resume));
  }

  /** Writes `message`, or queues it (bounded) while grpc-js pushes back; `content` is sized only then. */
  private send(message: WatchResponse, resumeRevision: number, content: SharedMessage | Session[]): void {
    if (this.done) return;
    if (!this.blocked) {
      this.write(message);
      return;
    }
    const bytes = Array.isArray(content)
      ? content.reduce((n, s) => n + sessionBytes(s), 64)
      : (content.bytes ??= eventBytes(content.event));
    if (!this.starting) {
      if (this.queue.length - this.head - this.burst >= this.queueLimit) {
        this.tooSlow(`more than ${this.queueLimit} messages waiting`, resumeRevision);
        return;
      }
      if (this.queuedBytes - this.burstBytes + bytes > this.queueBytes) {
        this.tooSlow(`more than ${this.queueBytes} bytes waiting`, resumeRevision);
        return;
      }
    }
    this.queue.push({ message, resumeRevision, bytes });
    this.queuedBytes += bytes;
    // Last: a full budget may end this very watch, which is consistent by now.
    this.budget.charge("queues", bytes);
  }

  private write(message: WatchResponse): void {
    if (!this.call.write(message)) this.blocked = true;
  }

  /** On 'drain': hands queued messages to grpc-js until it pushes back again. */
  private flush(): void {
    this.blocked = false;
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- write() in the loop sets blocked
    while (!this.done && !this.blocked && this.head < this.queue.length) {
      const next = this.queue[this.head]!;
      this.head += 1;
      if (this.burst > 0) {
        this.burst -= 1;
        this.burstBytes -= next.bytes;
      }
      this.queuedBytes -= next.bytes;
      this.budget.release("queues", next.bytes);
      this.write(next.message);
    }
    if (this.done) return;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.queue.length) {
      // Drop the sent prefix once it is most of the array, so a busy watch's memory stays bounded.
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }
}
