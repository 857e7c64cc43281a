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
 * 2. At most `maxPendingRequests` calls, across all connections (and the
 *    HTTP door's requests, which share the slots: ./read-slots.ts), are read
 *    while their request is incomplete; more wait at their headers, unread,
 *    and are read in arrival order as slots free. Together with
 *    --max-receive-message-size this bounds the memory that half-sent
 *    messages hold. A waiting call still holds what its client sent within
 *    its HTTP/2 stream window (64 KiB); past HELD_PER_PENDING waiting per
 *    slot a call is refused at its headers with UNAVAILABLE, which a client
 *    may retry. When a call on a connection with no slot preempts the
 *    oldest call being read on a connection holding several, that call
 *    ends with UNAVAILABLE.
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
import {
  Metadata,
  ServerInterceptingCall,
  status,
  type ServerInterceptingCallInterface,
  type ServerInterceptor,
  type StatusObject,
} from "@grpc/grpc-js";

import { RegistryError } from "../core/errors.js";
import { IntervalLog } from "../core/interval-log.js";
import type { Logger } from "../core/logger.js";
import { REQUIRED_ROLE, isStreaming, type Authorizer, type RpcMethod } from "./auth.js";
import { refuseCaller } from "./calls.js";
import { DeadlineQueue, type DeadlineEntry } from "./deadline-queue.js";
import { BUSY_MESSAGE, PREEMPTED_MESSAGE, ReadSlots, type SlotClaim } from "./read-slots.js";
import { outcomeOf, toServiceError, type RpcRecorder } from "./status.js";

export { BUSY_MESSAGE, HELD_PER_PENDING, PREEMPTED_MESSAGE } from "./read-slots.js";

export const REGISTRY_SERVICE_PATH = "/sessionregistry.v1.SessionRegistry/";

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
  /** The read slots of the daemon: the HTTP door claims its requests' here too. */
  readonly slots: ReadSlots;
  /** The request timeout of every call being read or waiting for a slot. */
  readonly deadlines: DeadlineQueue;
  private readonly timeoutLog: IntervalLog;

  constructor(readonly options: CallGuardOptions) {
    const { log, logIntervalMs } = options;
    this.slots = new ReadSlots({ maxPendingRequests: options.maxPendingRequests, log, logIntervalMs });
    this.timeoutLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, requestTimeoutMs: options.requestTimeoutMs },
          "ended calls whose request did not arrive in time (--request-timeout), and closed their connections",
        ),
      logIntervalMs,
    );
    this.deadlines = new DeadlineQueue(options.requestTimeoutMs);
    this.interceptor = (descriptor, call) => {
      const method = registryMethod(descriptor.path);
      const connection = call.getConnectionInfo();
      options.callStarted?.(connection);
      return new GuardedCall(this, call, descriptor.requestStream, method, connection);
    };
  }

  /** The caller's refusal at the headers (UNAUTHENTICATED or PERMISSION_DENIED), or undefined: it may call. */
  refusal(method: RpcMethod, metadata: Metadata, peer: () => string): RegistryError | undefined {
    const authorizer = this.options.authorizer;
    if (authorizer === undefined) return undefined;
    // No table yet: the role only. The handler checks the request's table.
    return refuseCaller(authorizer, method, metadata, this.options.log, peer);
  }

  /** A call's request did not arrive in time: counted for the log, and its connection closed once its status is out. */
  timedOut(connection: CallConnection): void {
    this.timeoutLog.add();
    this.options.closeConnection?.(connection);
  }

  /** Calls being read whose request is not complete yet, across all connections (and the HTTP door's requests). */
  get pendingRequests(): number {
    return this.slots.pendingRequests;
  }

  /** Calls held unread for a slot. */
  get heldRequests(): number {
    return this.slots.heldRequests;
  }

  /** Writes the counts of the current log interval (shutdown). */
  flushLogs(): void {
    this.slots.flushLogs();
    this.timeoutLog.flush();
  }

  record(method: RpcMethod, code: status, reason: string | undefined, startedAt: number | undefined): void {
    try {
      this.options.metrics?.rpcEnded(method, code, reason, startedAt);
    } catch (err) {
      this.options.log.error({ method, err }, "recording metrics failed");
    }
  }
}

/** What grpc-js tells an interceptor's call of, and the status a call ends with (grpc-js does not export their names). */
type InterceptingServerListener = Parameters<ServerInterceptingCallInterface["start"]>[0];
type PartialStatusObject = Parameters<ServerInterceptingCallInterface["sendStatus"]>[0];

/**
 * One call through the guard: the interceptor's call towards the handler
 * and its listener towards grpc-js in one object, with the call's state.
 * grpc-js's own ServerInterceptingCall would add a responder, two listener
 * objects and a closure per message and status to every call; this passes
 * everything through as it comes, holding only the metadata until the
 * caller is checked and the request has a read slot.
 */
class GuardedCall extends ServerInterceptingCall implements InterceptingServerListener, DeadlineEntry {
  private listener: InterceptingServerListener | undefined;
  private claim: SlotClaim | undefined;
  /** Reading the request in a slot: a streaming request's messages re-arm the timeout. */
  private reading = false;
  /** Once cancelled, or ended by the guard, the handler hears of nothing more. */
  private over = false;
  private readonly startedAt: number | undefined;
  dueAt = 0;
  newer: DeadlineEntry | undefined = undefined;
  older: DeadlineEntry | undefined = undefined;
  queued = false;

  constructor(
    private readonly guard: CallGuard,
    private readonly next: ServerInterceptingCallInterface,
    private readonly requestStream: boolean,
    private readonly method: RpcMethod | undefined,
    private readonly connection: CallConnection,
  ) {
    super(next);
    this.startedAt = method !== undefined && !isStreaming(method) ? performance.now() : undefined;
  }

  override start(listener: InterceptingServerListener): void {
    this.listener = listener;
    this.next.start(this);
  }

  override sendMetadata(metadata: Metadata): void {
    this.next.sendMetadata(metadata);
  }

  override sendMessage(message: unknown, callback: () => void): void {
    this.next.sendMessage(message, callback);
  }

  override sendStatus(statusObject: PartialStatusObject): void {
    this.next.sendStatus(statusObject);
  }

  override startRead(): void {
    this.next.startRead();
  }

  onReceiveMetadata(metadata: Metadata): void {
    if (this.over) return;
    const { guard, method } = this;
    if (method !== undefined && guard.options.authorizer !== undefined) {
      const refusal = guard.refusal(method, metadata, () => this.next.getPeer());
      if (refusal !== undefined) {
        const { code, reason } = outcomeOf(refusal);
        const error = toServiceError(refusal, guard.options.log, { method });
        this.end({ code: error.code, details: error.details, metadata: error.metadata }, code, reason);
        return;
      }
    }
    // The clock runs from the headers, also while the call waits for a slot.
    guard.deadlines.arm(this);
    const granted = guard.slots.claim(
      // Prefixed: an HTTP connection from the same address and port is another connection.
      `grpc|${this.connection.remoteAddress ?? ""}|${this.connection.remotePort ?? ""}`,
      (slot) => {
        // Set before the request is read: it may complete within onReceiveMetadata.
        this.claim = slot;
        this.reading = true;
        if (!this.over) this.listener!.onReceiveMetadata(metadata);
      },
      // Its slot is gone to another connection's call: the call ends.
      () => this.end(plainStatus(status.UNAVAILABLE, PREEMPTED_MESSAGE), status.UNAVAILABLE, undefined),
    );
    if (granted === undefined) this.end(plainStatus(status.UNAVAILABLE, BUSY_MESSAGE), status.UNAVAILABLE, undefined);
    else this.claim = granted;
  }

  onReceiveMessage(message: unknown): void {
    if (this.over) return;
    // A unary or server-streaming call still waits for the end of the request;
    // a streaming request gets the timeout afresh for each message.
    if (this.requestStream && this.reading) this.guard.deadlines.arm(this);
    this.listener!.onReceiveMessage(message);
  }

  onReceiveHalfClose(): void {
    if (this.over) return;
    this.settle();
    this.listener!.onReceiveHalfClose();
  }

  onCancel(): void {
    this.over = true;
    this.settle();
    this.listener?.onCancel();
  }

  /** The request timed out (DeadlineEntry). */
  expire(): void {
    this.end(
      plainStatus(status.DEADLINE_EXCEEDED, requestTimeoutMessage(this.guard.options.requestTimeoutMs)),
      status.DEADLINE_EXCEEDED,
      undefined,
    );
    this.guard.timedOut(this.connection);
  }

  /** The request is complete, or the call over: its slot (or its place in line) goes. */
  private settle(): void {
    this.guard.deadlines.disarm(this);
    this.reading = false;
    this.claim?.settle();
  }

  /** Ends the call with a status of the guard's own. */
  private end(statusObject: StatusObject, code: status, reason: string | undefined): void {
    this.settle();
    if (this.method !== undefined) this.guard.record(this.method, code, reason, this.startedAt);
    this.next.sendStatus(statusObject);
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

export function requestTimeoutMessage(timeoutMs: number): string {
  return (
    `the request did not arrive in full within ${timeoutMs} ms of the call's start (--request-timeout), ` +
    "so the daemon ended the call and closed the connection; send each request whole and promptly"
  );
}
