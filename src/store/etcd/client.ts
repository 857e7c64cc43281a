/**
 * The etcd connection of an EtcdStore, and how etcd's failures become
 * registry errors: anything that means "etcd cannot serve this right now"
 * (unreachable, deadline exceeded, no leader, circuit open, bad credentials)
 * is UNAVAILABLE with reason STORE_UNAVAILABLE, never INTERNAL.
 */
import {
  ClientClosedError,
  EtcdAuthenticationFailedError,
  EtcdInvalidAuthTokenError,
  EtcdPermissionDeniedError,
  EtcdWatchStreamEnded,
  Etcd3,
  GRPCUnauthenticatedError,
  isRecoverableError,
  type IOptions,
} from "etcd3";

import { RegistryError, storeUnavailable } from "../../core/errors.js";

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
 * the call once. (etcd3 only calls `execute` on it.)
 */
const RUN_ONCE = {
  execute<T>(fn: (context: { signal: AbortSignal }) => PromiseLike<T> | T): Promise<T> {
    return Promise.resolve().then(() => fn({ signal: new AbortController().signal }));
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

/** The error a store call reports for `err`: registry errors pass, etcd outages become STORE_UNAVAILABLE. */
export function toStoreError(err: unknown): unknown {
  if (err instanceof RegistryError) return err;
  if (isUnavailable(err)) return storeUnavailable((err as Error).message);
  return err;
}

/** etcd refused a read at a revision older than its compaction. */
export function isCompacted(err: unknown): boolean {
  return err instanceof Error && err.message.includes("required revision has been compacted");
}

/** etcd does not know the lease (expired or revoked). */
export function isLeaseNotFound(err: unknown): boolean {
  return err instanceof Error && err.message.includes("requested lease not found");
}
