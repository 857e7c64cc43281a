/**
 * The checks every call passes before grpc-js reads its request: a server
 * interceptor (ServerOptions `interceptors`) that runs when a call's headers
 * arrive.
 *
 * grpc-js pauses each new HTTP/2 stream and resumes it (startRead) only once
 * the metadata has passed every interceptor and reached the method's
 * handler. A call refused here is therefore never read: until the status is
 * sent, HTTP/2 flow control holds the client to its stream window (64 KiB);
 * after it, grpc-js drops whatever arrives on the stream.
 *
 * In order:
 * 1. SessionRegistry calls are authenticated, and the token's role checked
 *    against the method (./auth.ts), with the same statuses, logs and
 *    metrics as the handlers'. The table a token may use is in the request,
 *    so that check stays in the handler (service.ts), after the message.
 *    Health and reflection need no token.
 * 2. At most `maxPendingRequests` calls, across all connections, are read
 *    while their request is incomplete; more wait at their headers, unread,
 *    and are read in arrival order as slots free. Together with
 *    --max-receive-message-size this bounds the memory that half-sent
 *    messages hold. Waiting rather than refusing: well-behaved clients fill
 *    the slots for a moment too, when a burst of calls' headers arrives
 *    before their messages. A waiting call still holds what its client sent
 *    within its HTTP/2 stream window (64 KiB), so at most
 *    HELD_PER_PENDING times as many calls wait; past that a call is refused
 *    at its headers with UNAVAILABLE, which a client may retry.
 *    One connection cannot keep the others out: when every slot is taken
 *    and a call comes on a connection that has none, the oldest call being
 *    read on the connection that holds the most slots (two or more) ends
 *    with UNAVAILABLE and the new call takes its slot.
 * 3. A call's request (its message and the end of its side of the stream;
 *    for a streaming request, each message) must arrive within
 *    `requestTimeoutMs`, else the call ends with DEADLINE_EXCEEDED and its
 *    connection is closed: grpc-js keeps a half-sent message until the
 *    client ends the stream, and a client that stalls on purpose will not.
 *
 * The timeout is a transport limit like the message size, and answers the
 * way grpc-js answers an oversized message: a status code and a message,
 * without a registry ErrorInfo. Timeouts and waits are logged once per
 * interval, with a count.
 */
import { Metadata, ServerInterceptingCall, status, type ServerInterceptor, type StatusObject } from "@grpc/grpc-js";

import { RegistryError } from "../core/errors.js";
import { IntervalLog } from "../core/interval-log.js";
import type { Logger } from "../core/logger.js";
import { REQUIRED_ROLE, isStreaming, type Authorizer, type RpcMethod } from "./auth.js";
import { refuseCaller } from "./calls.js";
import { outcomeOf, toServiceError, type RpcRecorder } from "./status.js";

export const REGISTRY_SERVICE_PATH = "/sessionregistry.v1.SessionRegistry/";

/** How many calls may wait unread per --max-pending-requests slot: 256 slots, 1,024 waiting, 64 MiB of stream windows. */
export const HELD_PER_PENDING = 4;

/** Where a call came from, as grpc-js reports it (getConnectionInfo). */
export interface CallConnection {
  remoteAddress?: string | undefined;
  remotePort?: number | undefined;
}

export interface CallGuardOptions {
  log: Logger;
  /** Without one, calls need no token. */
  authorizer?: Authorizer;
  metrics?: RpcRecorder;
  requestTimeoutMs: number;
  maxPendingRequests: number;
  /** How often a repeated refusal is logged (a count per interval). */
  logIntervalMs: number;
  /** Told of each call as its headers arrive: its connection is set up. */
  callStarted?(connection: CallConnection): void;
  /** Closes the connection a call came on. */
  closeConnection?(connection: CallConnection): void;
}

export class CallGuard {
  readonly interceptor: ServerInterceptor;
  /** Calls being read: past their headers, their request not complete yet. */
  private reading = 0;
  /** Calls held at their headers, unread, for a reading slot; oldest first. */
  private readonly held = new Set<() => void>();
  /** The calls being read on each connection (remote address|port), oldest first: each ends its call to free its slot. */
  private readonly readers = new Map<string, (() => void)[]>();
  /** A slot is being handed from a preempted call to a new one: held calls must not take it meanwhile. */
  private handingOver = false;
  private readonly heldLog: IntervalLog;
  private readonly busyLog: IntervalLog;
  private readonly preemptLog: IntervalLog;
  private readonly timeoutLog: IntervalLog;

  constructor(private readonly options: CallGuardOptions) {
    const { log, logIntervalMs } = options;
    this.heldLog = new IntervalLog(
      (count) =>
        // info: a burst of well-behaved calls is held for a moment too.
        log.info(
          { count, maxPendingRequests: options.maxPendingRequests },
          "held calls unread: --max-pending-requests requests are arriving already",
        ),
      logIntervalMs,
    );
    this.busyLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, maxPendingRequests: options.maxPendingRequests, maxWaiting: options.maxPendingRequests * HELD_PER_PENDING },
          "refused calls UNAVAILABLE at their headers: too many calls are waiting for their requests to be read",
        ),
      logIntervalMs,
    );
    this.preemptLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, maxPendingRequests: options.maxPendingRequests },
          "ended calls whose request was still arriving, on connections holding several read slots, to read calls of other connections",
        ),
      logIntervalMs,
    );
    this.timeoutLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, requestTimeoutMs: options.requestTimeoutMs },
          "ended calls whose request did not arrive in time (--request-timeout), and closed their connections",
        ),
      logIntervalMs,
    );
    this.interceptor = (descriptor, call) => {
      const method = registryMethod(descriptor.path);
      const connection = call.getConnectionInfo();
      const key = `${connection.remoteAddress ?? ""}|${connection.remotePort ?? ""}`;
      options.callStarted?.(connection);
      const startedAt = method !== undefined && !isStreaming(method) ? performance.now() : undefined;
      let reading = false;
      let admit: (() => void) | undefined;
      let timer: NodeJS.Timeout | undefined;

      /** The request is complete, or the call over: its slot (or its place in line) goes. */
      const settle = () => {
        clearTimeout(timer);
        timer = undefined;
        if (admit !== undefined) {
          this.held.delete(admit);
          admit = undefined;
        }
        if (reading) {
          reading = false;
          this.reading -= 1;
          const readers = this.readers.get(key);
          const at = readers?.indexOf(preempt) ?? -1;
          if (at >= 0) readers!.splice(at, 1);
          if (readers?.length === 0) this.readers.delete(key);
          this.admitHeld();
        }
      };
      // Ends this call while it is being read, so that a call on another connection gets its slot.
      const preempt = () => end(plainStatus(status.UNAVAILABLE, PREEMPTED_MESSAGE), status.UNAVAILABLE, undefined);
      const end = (statusObject: StatusObject, code: status, reason: string | undefined) => {
        settle();
        if (method !== undefined) this.record(method, code, reason, startedAt);
        call.sendStatus(statusObject);
      };
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => {
          this.timeoutLog.add();
          end(plainStatus(status.DEADLINE_EXCEEDED, requestTimeoutMessage(options.requestTimeoutMs)), status.DEADLINE_EXCEEDED, undefined);
          options.closeConnection?.(connection);
        }, options.requestTimeoutMs);
      };

      return new ServerInterceptingCall(call, {
        start: (next) =>
          next({
            onReceiveMetadata: (metadata, nextMetadata) => {
              if (method !== undefined && options.authorizer !== undefined) {
                const refusal = this.checkCaller(options.authorizer, method, metadata, () => call.getPeer());
                if (refusal !== undefined) {
                  const { code, reason } = outcomeOf(refusal);
                  const error = toServiceError(refusal, options.log, { method });
                  end({ code: error.code, details: error.details, metadata: error.metadata }, code, reason);
                  return;
                }
              }
              // The clock runs from the headers, also while the call waits for a slot.
              arm();
              const start = () => {
                admit = undefined;
                reading = true;
                this.reading += 1;
                const readers = this.readers.get(key);
                if (readers === undefined) this.readers.set(key, [preempt]);
                else readers.push(preempt);
                nextMetadata(metadata);
              };
              if (this.reading < options.maxPendingRequests) {
                start();
              } else if (this.takeSlotFor(key)) {
                this.preemptLog.add();
                start();
              } else if (this.held.size >= options.maxPendingRequests * HELD_PER_PENDING) {
                this.busyLog.add();
                end(plainStatus(status.UNAVAILABLE, BUSY_MESSAGE), status.UNAVAILABLE, undefined);
              } else {
                // Held, not refused: a burst of well-behaved calls fills the slots for a moment too.
                this.heldLog.add();
                admit = start;
                this.held.add(start);
              }
            },
            onReceiveMessage: (message, next) => {
              // A unary or server-streaming call still waits for the end of the request;
              // a streaming request gets the timeout afresh for each message.
              if (descriptor.requestStream && reading) arm();
              next(message);
            },
            onReceiveHalfClose: (next) => {
              settle();
              next();
            },
            onCancel: settle,
          }),
      });
    };
  }

  /**
   * Frees a slot for a call on connection `key` when that connection has
   * none and another holds two or more: that one's oldest call being read
   * ends (UNAVAILABLE). Returns whether a slot is free for the caller now.
   */
  private takeSlotFor(key: string): boolean {
    if (this.readers.has(key)) return false;
    let victim: (() => void)[] | undefined;
    for (const readers of this.readers.values()) if (readers.length >= 2 && readers.length > (victim?.length ?? 0)) victim = readers;
    if (victim === undefined) return false;
    this.handingOver = true;
    try {
      victim[0]!();
    } finally {
      this.handingOver = false;
    }
    return this.reading < this.options.maxPendingRequests;
  }

  /** Starts reading held calls, oldest first, while there are free slots. */
  private admitHeld(): void {
    if (this.handingOver) return;
    for (const start of this.held) {
      if (this.reading >= this.options.maxPendingRequests) return;
      this.held.delete(start);
      start();
    }
  }

  /** Calls being read whose request is not complete yet, across all connections. */
  get pendingRequests(): number {
    return this.reading;
  }

  /** Calls held unread for a slot. */
  get heldRequests(): number {
    return this.held.size;
  }

  /** Writes the counts of the current log interval (shutdown). */
  flushLogs(): void {
    this.heldLog.flush();
    this.busyLog.flush();
    this.preemptLog.flush();
    this.timeoutLog.flush();
  }

  /** The caller's refusal (UNAUTHENTICATED or PERMISSION_DENIED), logged as the handlers log it; undefined when it may call. */
  private checkCaller(authorizer: Authorizer, method: RpcMethod, metadata: Metadata, peer: () => string): RegistryError | undefined {
    // No table yet: the role only. The handler checks the request's table.
    return refuseCaller(authorizer, method, metadata, this.options.log, peer);
  }

  private record(method: RpcMethod, code: status, reason: string | undefined, startedAt: number | undefined): void {
    try {
      this.options.metrics?.rpcEnded(method, code, reason, startedAt);
    } catch (err) {
      this.options.log.error({ method, err }, "recording metrics failed");
    }
  }
}

/** The SessionRegistry method a path names; undefined for other services (health, reflection). */
function registryMethod(path: string): RpcMethod | undefined {
  if (!path.startsWith(REGISTRY_SERVICE_PATH)) return undefined;
  const name = path.slice(REGISTRY_SERVICE_PATH.length);
  return Object.hasOwn(REQUIRED_ROLE, name) ? (name as RpcMethod) : undefined;
}

function plainStatus(code: status, details: string): StatusObject {
  return { code, details, metadata: new Metadata() };
}

export const BUSY_MESSAGE =
  "the daemon is busy reading other calls' requests (--max-pending-requests, and as many again waiting); retry after a moment";

export const PREEMPTED_MESSAGE =
  "the daemon ended this call while its request was still arriving, to read other connections' calls (--max-pending-requests); send each request whole and promptly, and retry";

export function requestTimeoutMessage(timeoutMs: number): string {
  return (
    `the request did not arrive in full within ${timeoutMs} ms of the call's start (--request-timeout), ` +
    "so the daemon ended the call and closed the connection; send each request whole and promptly"
  );
}
