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
import { Metadata, ServerInterceptingCall, status, type ServerInterceptor, type StatusObject } from "@grpc/grpc-js";

import { RegistryError } from "../core/errors.js";
import { IntervalLog } from "../core/interval-log.js";
import type { Logger } from "../core/logger.js";
import { REQUIRED_ROLE, isStreaming, type Authorizer, type RpcMethod } from "./auth.js";
import { refuseCaller } from "./calls.js";
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
  private readonly timeoutLog: IntervalLog;

  constructor(private readonly options: CallGuardOptions) {
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
    this.interceptor = (descriptor, call) => {
      const method = registryMethod(descriptor.path);
      const connection = call.getConnectionInfo();
      // Prefixed: an HTTP connection from the same address and port is another connection.
      const key = `grpc|${connection.remoteAddress ?? ""}|${connection.remotePort ?? ""}`;
      options.callStarted?.(connection);
      const startedAt = method !== undefined && !isStreaming(method) ? performance.now() : undefined;
      let claim: SlotClaim | undefined;
      let reading = false;
      let timer: NodeJS.Timeout | undefined;

      /** The request is complete, or the call over: its slot (or its place in line) goes. */
      const settle = () => {
        clearTimeout(timer);
        timer = undefined;
        reading = false;
        claim?.settle();
      };
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
              const granted = this.slots.claim(
                key,
                (slot) => {
                  // Set before the request is read: it may complete within nextMetadata.
                  claim = slot;
                  reading = true;
                  nextMetadata(metadata);
                },
                // Its slot is gone to another connection's call: the call ends.
                () => end(plainStatus(status.UNAVAILABLE, PREEMPTED_MESSAGE), status.UNAVAILABLE, undefined),
              );
              if (granted === undefined) end(plainStatus(status.UNAVAILABLE, BUSY_MESSAGE), status.UNAVAILABLE, undefined);
              else claim = granted;
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

export function requestTimeoutMessage(timeoutMs: number): string {
  return (
    `the request did not arrive in full within ${timeoutMs} ms of the call's start (--request-timeout), ` +
    "so the daemon ended the call and closed the connection; send each request whole and promptly"
  );
}
