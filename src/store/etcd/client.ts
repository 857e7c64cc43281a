/**
 * The etcd connection of an EtcdStore, and how etcd's failures become
 * registry errors: anything that means "etcd cannot serve this right now"
 * (unreachable, deadline exceeded, no leader, circuit open, bad credentials)
 * is UNAVAILABLE with reason STORE_UNAVAILABLE, never INTERNAL, and says in
 * words what failed and where (EtcdErrors), never in etcd3's, cockatiel's or
 * grpc-js's.
 */
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  Etcd3,
  GRPCDeadlineExceededError,
  GRPCUnauthenticatedError,
  isRecoverableError,
  type IOptions,
} from "etcd3";

import { RegistryError, storeUnavailable, type StoreLocation } from "../../core/errors.js";

export interface EtcdConnectionOptions {
  /** Client URLs, e.g. ["http://127.0.0.1:2379"]; https:// with `tls`. */
  endpoints: string[];
  /** Deadline of each unary etcd call (default 5,000 ms). */
  requestTimeoutMs?: number;
  /** How long to wait for a connection (default 5,000 ms). */
  dialTimeoutMs?: number;
  auth?: { username: string; password: string };
  /** TLS to etcd; without `ca`, the system's roots check etcd's certificate. */
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer };
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 5_000;

type GlobalPolicy = NonNullable<NonNullable<IOptions["faultHandling"]>["global"]>;

/**
 * etcd3's default global policy retries "recoverable" failures, deadline
 * exceeded among them, up to 3 times. A write whose deadline passed may have
 * committed, and a blind retry of a compare-guarded Txn would then report the
 * store's own write as a conflict (SESSION_EXISTS for the caller's own
 * Register). So the store makes every attempt itself; this policy just runs
 * the call once. (etcd3 only calls `execute` on it, and never reads the
 * context, so one never-aborted context serves every call.)
 */
const NEVER_ABORTED = { signal: new AbortController().signal };
const RUN_ONCE = {
  execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    return Promise.resolve().then(() => fn(NEVER_ABORTED));
  },
} as unknown as GlobalPolicy;

type WatchBackoff = NonNullable<NonNullable<IOptions["faultHandling"]>["watchBackoff"]>;

/**
 * How long etcd3 waits before re-creating watches after a disconnection:
 * doubling from 100 ms up to 2 s. (Its default grows to 30 s, which would
 * keep watches, and a closing process, waiting that long after etcd returns.)
 */
function watchBackoff(duration = 100): WatchBackoff {
  return {
    duration,
    next: () => watchBackoff(Math.min(duration * 2, 2_000)),
  };
}

export function createClient(o: EtcdConnectionOptions): Etcd3 {
  const timeout = o.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const options: IOptions = {
    hosts: o.endpoints,
    dialTimeout: o.dialTimeoutMs ?? 5_000,
    // Streams (watch, lease keep-alive) live on; every unary call gets a deadline.
    defaultCallOptions: (context) => (context.isStream ? {} : { deadline: Date.now() + timeout }),
    faultHandling: { global: RUN_ONCE, watchBackoff: watchBackoff() },
    // A List page of large sessions can exceed gRPC's default 4 MiB.
    grpcOptions: { "grpc.max_receive_message_length": 64 * 1024 * 1024 },
  };
  if (o.auth !== undefined) options.auth = { username: o.auth.username, password: o.auth.password };
  if (o.tls !== undefined) {
    options.credentials = {
      // grpc-js takes a missing root certificate (null) as "the system's roots".
      rootCertificate: o.tls.ca ?? (null as unknown as Buffer),
      ...(o.tls.key !== undefined ? { privateKey: o.tls.key } : {}),
      ...(o.tls.cert !== undefined ? { certChain: o.tls.cert } : {}),
    };
  }
  return new Etcd3(options);
}

/** Whether `err` means etcd cannot serve right now (as opposed to a bug or a rejected request). */
export function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  if (isRecoverableError(err)) return true;
  if (
    err instanceof ClientClosedError ||
    err instanceof EtcdWatchStreamEnded ||
    err instanceof EtcdAuthenticationFailedError ||
    err instanceof EtcdInvalidAuthTokenError ||
    err instanceof EtcdPermissionDeniedError ||
    err instanceof GRPCUnauthenticatedError
  ) {
    return true;
  }
  // cockatiel's open circuit breaker (etcd3 trips it after consecutive failures of a host).
  if ((err as { isBrokenCircuitError?: unknown }).isBrokenCircuitError === true) return true;
  // A raw grpc-js error from a stream: CANCELLED, DEADLINE_EXCEEDED, UNAVAILABLE.
  const code = (err as { code?: unknown }).code;
  return code === 1 || code === 4 || code === 14;
}

/**
 * etcd3 stops calling a host for this long after 3 failures in a row
 * (cockatiel's circuit breaker, its default `halfOpenAfter`); calls in
 * between fail at once without trying.
 */
const BREAKER_HALF_OPEN_MS = 5_000;

/**
 * Turns etcd's failures into STORE_UNAVAILABLE errors that say where etcd is
 * and what went wrong, in the words of someone running it: "etcd at
 * http://127.0.0.1:2379 is unreachable (connection refused)". One per store.
 * While etcd3's circuit breaker is open, calls fail without reaching etcd,
 * and the error repeats the last real reason instead of the breaker's own.
 */
export class EtcdErrors {
  readonly where: StoreLocation;
  private readonly at: string;
  private lastWhy: string | undefined;

  constructor(endpoints: readonly string[]) {
    this.where = { store: "etcd", endpoints: endpoints.map(withoutUserInfo) };
    this.at = `etcd at ${this.where.endpoints.join(", ")}`;
  }

  /** The error a store call reports for `err`: registry errors pass, etcd outages become STORE_UNAVAILABLE. */
  toStoreError(err: unknown): unknown {
    if (err instanceof RegistryError) return err;
    if (isUnavailable(err)) return this.unavailable(this.why(err));
    return err;
  }

  /** STORE_UNAVAILABLE for "etcd at URL `predicate`", e.g. predicate "did not answer within 5000 ms". */
  unavailable(predicate: string): RegistryError {
    return storeUnavailable(`${this.at} ${predicate}`, this.where);
  }

  /** STORE_UNAVAILABLE with a detail of the store's own (not about reaching etcd). */
  unavailableBecause(detail: string): RegistryError {
    return storeUnavailable(detail, this.where);
  }

  /** What is wrong with etcd, as a predicate of "etcd at URL". */
  why(err: unknown): string {
    if ((err as { isBrokenCircuitError?: unknown } | null | undefined)?.isBrokenCircuitError === true) {
      const last = this.lastWhy ?? "is unreachable";
      return `${last}; after repeated failures the daemon tries again within ${BREAKER_HALF_OPEN_MS / 1000} s`;
    }
    const why = describeEtcdFailure(err);
    this.lastWhy = why;
    return why;
  }
}

/** The predicate of "etcd at URL" for one failure of a call to etcd. */
function describeEtcdFailure(err: unknown): string {
  if (err instanceof ClientClosedError) return "is closed: the daemon is shutting down";
  if (err instanceof EtcdAuthenticationFailedError || err instanceof EtcdInvalidAuthTokenError || err instanceof GRPCUnauthenticatedError) {
    return "refused the daemon's credentials (check --etcd-user and --etcd-password)";
  }
  if (err instanceof EtcdPermissionDeniedError) {
    return "denied the daemon's etcd user access (check its role's permissions on --etcd-prefix)";
  }
  if (err instanceof EtcdWatchStreamEnded) return "ended the daemon's watch stream";
  const text = err instanceof Error ? err.message : String(err);
  const code = (err as { code?: unknown } | null | undefined)?.code;
  if (err instanceof GRPCDeadlineExceededError || code === 4 || /DEADLINE_EXCEEDED|deadline exceeded/i.test(text)) {
    return "did not answer in time";
  }
  if (/no leader/i.test(text)) return "has no leader (too few of its members are up)";
  if (/ECONNREFUSED/.test(text)) return "is unreachable (connection refused)";
  if (/ENOTFOUND|EAI_AGAIN|EAI_NONAME|Name resolution failed/i.test(text)) return "is unreachable (its host name does not resolve)";
  if (/EHOSTUNREACH|ENETUNREACH/.test(text)) return "is unreachable (no route to its host)";
  if (/ETIMEDOUT/.test(text)) return "is unreachable (connecting timed out)";
  if (/certificate|SSL|TLS|handshake/i.test(text)) {
    return "is unreachable (the TLS handshake failed; check --etcd-ca, --etcd-cert and --etcd-key)";
  }
  if (/ECONNRESET|EPIPE|socket hang up|Connection dropped|GOAWAY|Stream refused/i.test(text)) {
    return "is unreachable (the connection was lost)";
  }
  if (code === 1 || /CANCELLED/.test(text)) return "is unreachable (the call was cancelled)";
  return "is unreachable";
}

/** An endpoint as shown to clients and in logs: no user:password@ even if one was given. */
function withoutUserInfo(endpoint: string): string {
  try {
    const url = new URL(endpoint);
    if (url.username === "" && url.password === "") return endpoint;
    url.username = "";
    url.password = "";
    return url.toString().replace(/\/$/, "");
  } catch {
    return endpoint;
  }
}

/** etcd refused a read at a revision older than its compaction. */
export function isCompacted(err: unknown): boolean {
  return err instanceof Error && err.message.includes("required revision has been compacted");
}

/** etcd does not know the lease (expired or revoked). */
export function isLeaseNotFound(err: unknown): boolean {
  return err instanceof Error && err.message.includes("requested lease not found");
}
