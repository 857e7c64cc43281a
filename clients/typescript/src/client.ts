/**
 * A thin, promise-based client over the generated grpc-js stub. It adds what
 * every caller would otherwise repeat: a per-call deadline, default metadata,
 * plain option objects instead of full request messages, and typed errors
 * (every rejection is a SessionRegistryError, see errors.ts). The messages it
 * returns are the generated types, so the proto's comments document them.
 */
import { randomUUID } from "node:crypto";
import {
  type CallOptions,
  type ChannelCredentials,
  type ChannelOptions,
  type ClientUnaryCall,
  credentials as grpcCredentials,
  Metadata,
  type ServiceError,
  status,
} from "@grpc/grpc-js";
import type { Duration } from "./gen/google/protobuf/duration.js";
import {
  SessionRegistryClient as GeneratedClient,
  type GetServerInfoResponse,
  type ListResponse,
  type Session,
  type Table,
} from "./gen/sessionregistry/v1/session_registry.js";
import { fromServiceError, SessionRegistryError } from "./errors.js";
import { SessionLease } from "./lease.js";
import { TablesWatchImpl, type TablesWatchOptions, type TablesWatchStream } from "./tables-watch.js";
import { type WatchOptions, type WatchStream, WatchStreamImpl } from "./watch.js";

export interface SessionRegistryClientOptions {
  /** Default: insecure (plaintext), as for a daemon on localhost. */
  credentials?: ChannelCredentials;
  /** Passed to grpc-js as is. */
  channelOptions?: ChannelOptions;
  /** Deadline of each call in milliseconds; default 10 000; 0 means none. */
  timeoutMs?: number;
  /** Sent with every call (e.g. `authorization`). */
  metadata?: Record<string, string>;
  /**
   * Retries of register, update and remove on UNAVAILABLE (see "Retries" in
   * the README); default `{maxAttempts: 5, initialBackoffMs: 200,
   * maxBackoffMs: 2000}`. `false` turns them off.
   */
  retry?: RetryOptions | false;
  /**
   * Told before each retry of register, update or remove, e.g. to show a
   * person why a call takes long. Throwing from it is not caught.
   */
  onRetry?: (event: RetryEvent) => void;
}

/** One retry about to happen, for SessionRegistryClientOptions.onRetry. */
export interface RetryEvent {
  method: "register" | "update" | "remove";
  /** The attempt that failed (1 = the first call). */
  attempt: number;
  maxAttempts: number;
  /** Why it failed (always UNAVAILABLE). */
  error: SessionRegistryError;
  /** The pause before the next attempt, in milliseconds. */
  delayMs: number;
}

/** How register, update and remove retry on UNAVAILABLE. */
export interface RetryOptions {
  /** Attempts in all, the first included; default 5. 1 means no retry. */
  maxAttempts?: number;
  /** The pause before the first retry, doubled before each next one (up to maxBackoffMs), with jitter; default 200. */
  initialBackoffMs?: number;
  /** The longest pause between attempts; default 2000. */
  maxBackoffMs?: number;
}

const DEFAULT_RETRY: Required<RetryOptions> = { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 2_000 };

/** Session labels, as a plain object or a Map. */
export type SessionMetadata = Record<string, string> | ReadonlyMap<string, string>;

export interface RegisterInput {
  /** Absolute POSIX path; required. */
  projectPath: string;
  /** Empty or absent: the server makes a UUIDv4. */
  id?: string;
  /** Empty or absent: the last segment of the project path. */
  name?: string;
  metadata?: SessionMetadata;
  /** Absent or 0: the session never expires; otherwise 1 s to 24 h. */
  ttlMs?: number;
  /**
   * The idempotency key (RegisterRequest.request_id): 1-128 characters of
   * `[A-Za-z0-9._:-]`. Absent: with retries on, a random UUID per call (kept
   * across its attempts); with `retry: false`, none.
   */
  requestId?: string;
}

/** Exactly one key; the `never` members make a second key a compile error. */
export type LookupKey =
  | { id: string; projectPath?: never; name?: never }
  | { projectPath: string; id?: never; name?: never }
  | { name: string; id?: never; projectPath?: never };

/** Field paths of UpdateRequest.update_mask, as on the wire. */
export type UpdatePath = "name" | "project_path" | "metadata" | "ttl";

export interface UpdateInput {
  id: string;
  table?: string;
  /** "" derives the name again from the project path. */
  name?: string;
  projectPath?: string;
  /** `{}` clears the metadata. */
  metadata?: SessionMetadata;
  /** `null` or 0 clears the ttl. */
  ttlMs?: number | null;
  /** Default: the paths of the fields above that are not undefined. */
  updateMask?: UpdatePath[];
  /** Update only if the session is at this revision (its etag). */
  expectedRevision?: number;
  /**
   * Update only if the table's history is still this one: pass the
   * session's `tableUid` with `expectedRevision`, so that an etag from
   * another history (a restarted daemon, a table made again) never matches
   * by chance. A mismatch is TableUidMismatchError.
   */
  tableUid?: string;
  /** The idempotency key (UpdateRequest.request_id); absent: as in RegisterInput.requestId. */
  requestId?: string;
}

export interface KeepAliveOptions {
  table?: string;
  /** Time between keep-alives; default a third of the ttl. */
  intervalMs?: number;
}

/** The smallest ttl the daemon accepts (1 s). */
const MIN_TTL_MS = 1_000;

/** The last-overload shape of every generated unary method. */
type UnaryMethod<Req, Res> = (
  request: Req,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Res) => void,
) => ClientUnaryCall;

const DEFAULT_TIMEOUT_MS = 10_000;

export class SessionRegistryClient {
  private readonly stub: GeneratedClient;
  private readonly timeoutMs: number;
  private readonly retry: Required<RetryOptions> | undefined;
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  /** Built once so that a bad key or value throws here rather than on every call. */
  private readonly metadata: Metadata;
  private closed = false;
  /** Open watches and leases, stopped by close(). */
  private readonly watches = new Set<{ close(): void }>();
  private readonly leases = new Set<SessionLease>();

  constructor(address: string, options: SessionRegistryClientOptions = {}) {
    // Metadata first: if a key is invalid, no channel has been opened yet.
    this.metadata = new Metadata();
    for (const [key, value] of Object.entries(options.metadata ?? {})) this.metadata.set(key, value);
    this.timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.retry = options.retry === false ? undefined : retryOptions(options.retry ?? {});
    this.onRetry = options.onRetry;
    this.stub = new GeneratedClient(address, options.credentials ?? grpcCredentials.createInsecure(), options.channelOptions);
  }

  /** Creates a table, or returns the existing one with `created: false` (see the proto). */
  async createTable(req: { table?: string; maxSessions?: number } = {}): Promise<{ table: Table; created: boolean }> {
    const res = await this.unary(this.stub.createTable.bind(this.stub), { table: req.table ?? "", maxSessions: req.maxSessions ?? 0 });
    return { table: required(res.table, "table"), created: res.created };
  }

  /** The table (default: `default`) with its session count and revision. */
  async getTable(table = ""): Promise<Table> {
    return required((await this.unary(this.stub.getTable.bind(this.stub), { table })).table, "table");
  }

  /** Every table, in name order. */
  async listTables(): Promise<Table[]> {
    return (await this.unary(this.stub.listTables.bind(this.stub), {})).tables;
  }

  /**
   * The daemon's version, store kind and whether its store serves now. It
   * reads no table, so it answers while the store (etcd) is unreachable.
   */
  async serverInfo(): Promise<GetServerInfoResponse> {
    return this.unary(this.stub.getServerInfo.bind(this.stub), {});
  }

  /** Deletes a table; one that still holds sessions needs `force`. */
  async deleteTable(table: string, options: { force?: boolean } = {}): Promise<void> {
    await this.unary(this.stub.deleteTable.bind(this.stub), { table, force: options.force ?? false });
  }

  /**
   * Registers a session and returns it as stored (normalized, id and times
   * filled in). Retried on UNAVAILABLE with one request_id, so a retry whose
   * earlier attempt did register returns that session rather than failing
   * with SESSION_EXISTS or PROJECT_ALREADY_OPEN. update and remove likewise.
   */
  async register(session: RegisterInput, options: { table?: string } = {}): Promise<Session> {
    const { requestId: given, ...fields } = session;
    const message = sessionMessage({ ...fields, ttl: toDuration(session.ttlMs) });
    const request = { table: options.table ?? "", session: message, requestId: this.requestId(given) };
    const res = await this.withRetries("register", (deadline) => this.unary(this.stub.register.bind(this.stub), request, deadline));
    return required(res.session, "session");
  }

  /** Finds one session by exactly one of id, project path or name. */
  async lookup(key: LookupKey, options: { table?: string } = {}): Promise<Session> {
    const res = await this.unary(this.stub.lookup.bind(this.stub), { table: options.table ?? "", key: lookupCase(key) });
    return required(res.session, "session");
  }

  /** One page of a table's sessions, oldest first, with the revision it was read at. */
  async listPage(req: { table?: string; pageSize?: number; pageToken?: string } = {}): Promise<ListResponse> {
    return this.unary(this.stub.list.bind(this.stub), {
      table: req.table ?? "",
      pageSize: req.pageSize ?? 0,
      pageToken: req.pageToken ?? "",
    });
  }

  /** Every session of a table, fetching pages as the iteration needs them. */
  async *list(req: { table?: string; pageSize?: number } = {}): AsyncGenerator<Session, void, undefined> {
    let pageToken = "";
    do {
      const page = await this.listPage({ ...req, pageToken });
      yield* page.sessions;
      pageToken = page.nextPageToken;
    } while (pageToken !== "");
  }

  /**
   * Changes the given fields of a session. Without `updateMask`, the mask
   * names every field that is not undefined, so `{metadata: {}}` clears the
   * metadata and `{ttlMs: null}` clears the ttl. Retried on UNAVAILABLE with
   * one request_id (`requestId`, or a random one), so a retry whose earlier
   * attempt did apply returns that result rather than REVISION_MISMATCH.
   */
  async update(req: UpdateInput): Promise<Session> {
    const session = sessionMessage({ ...req, ttl: toDuration(req.ttlMs) });
    const request = {
      table: req.table ?? "",
      session,
      updateMask: req.updateMask ?? impliedMask(req),
      expectedRevision: req.expectedRevision ?? 0,
      requestId: this.requestId(req.requestId),
      tableUid: req.tableUid ?? "",
    };
    const res = await this.withRetries("update", (deadline) => this.unary(this.stub.update.bind(this.stub), request, deadline));
    return required(res.session, "session");
  }

  /**
   * Removes a session and returns it as it was; undefined if it was missing
   * and `allowMissing` was set. Retried on UNAVAILABLE with one request_id
   * (`requestId`, or a random one). `expectedRevision` and `tableUid` make
   * it conditional, as in update().
   */
  async remove(
    id: string,
    options: { table?: string; expectedRevision?: number; tableUid?: string; allowMissing?: boolean; requestId?: string } = {},
  ): Promise<Session | undefined> {
    const request = {
      table: options.table ?? "",
      id,
      expectedRevision: options.expectedRevision ?? 0,
      allowMissing: options.allowMissing ?? false,
      requestId: this.requestId(options.requestId),
      tableUid: options.tableUid ?? "",
    };
    const res = await this.withRetries("remove", (deadline) => this.unary(this.stub.remove.bind(this.stub), request, deadline));
    return res.session;
  }

  /**
   * Pushes a session's expireTime to now + its ttl and returns the session.
   * A session without ttl comes back unchanged; an expired one is
   * SessionNotFoundError. See registerWithKeepAlive for the usual loop.
   */
  async keepAlive(id: string, options: { table?: string } = {}): Promise<Session> {
    const res = await this.unary(this.stub.keepAlive.bind(this.stub), { table: options.table ?? "", id });
    return required(res.session, "session");
  }

  /**
   * Streams a table's changes: `for await (const item of client.watch())`.
   * From revision 0 (the default) the first item is a snapshot of every
   * session, then one item per change. The call starts with the iteration,
   * has no deadline and carries the client's metadata. Errors are thrown from
   * the loop as typed errors; with `autoResume` transient failures reconnect
   * (from `lastRevision + 1`, with the `tableUid` of that revision) and a
   * lost position (compacted, or from another history of the table) yields a
   * new snapshot with `resync: true` instead. `break`, close() and `signal`
   * end it cleanly.
   */
  watch(req: WatchOptions = {}): WatchStream {
    const table = req.table ?? "";
    return new WatchStreamImpl(
      (startRevision, tableUid) => {
        if (this.closed) throw new SessionRegistryError({ code: status.CANCELLED, details: "the client is closed" });
        return this.stub.watch({ table, startRevision, tableUid }, this.metadata.clone(), {});
      },
      req,
      // Tracked while iterated, so that close() can end it. On a closed
      // client the first next() rejects with CANCELLED, as unary calls do.
      { onStart: (s) => this.watches.add(s), onFinish: (s) => this.watches.delete(s) },
    );
  }

  /**
   * Streams every table with its session count: `for await (const update of
   * client.watchTables())`. The first item is a snapshot of every table;
   * each later one is the list after a change, with the tables created or
   * changed and the names of those deleted. A reader that falls behind gets
   * fewer, coalesced items and is never cut off. With `autoResume` a
   * dropped call reconnects and the next item is a new snapshot. `break`,
   * close() and `signal` end it cleanly.
   */
  watchTables(options: TablesWatchOptions = {}): TablesWatchStream {
    return new TablesWatchImpl(
      () => {
        if (this.closed) throw new SessionRegistryError({ code: status.CANCELLED, details: "the client is closed" });
        return this.stub.watchTables({}, this.metadata.clone(), {});
      },
      options,
      { onStart: (s) => this.watches.add(s), onFinish: (s) => this.watches.delete(s) },
    );
  }

  /**
   * Registers a session with a ttl and keeps it alive until the lease is
   * closed or removed, or the session is lost. Rejects as register() does;
   * throws a TypeError, before any call, if `ttlMs` is missing or below 1000.
   */
  async registerWithKeepAlive(session: RegisterInput & { ttlMs: number }, options: KeepAliveOptions = {}): Promise<SessionLease> {
    const ttlMs = session.ttlMs;
    if (typeof ttlMs !== "number" || !Number.isFinite(ttlMs) || ttlMs < MIN_TTL_MS) {
      throw new TypeError(`registerWithKeepAlive needs ttlMs >= ${MIN_TTL_MS}; got ${String(ttlMs)}`);
    }
    const intervalMs = options.intervalMs ?? ttlMs / 3;
    if (!Number.isFinite(intervalMs) || intervalMs <= 0) {
      throw new TypeError(`registerWithKeepAlive needs a positive intervalMs; got ${String(intervalMs)}`);
    }
    const table = options.table ?? "";
    const registered = await this.register(session, { table });
    const lease = new SessionLease(this, registered, table, intervalMs, (l) => this.leases.delete(l));
    if (this.closed) lease.close();
    else this.leases.add(lease);
    return lease;
  }

  /**
   * Closes the channel. Unary calls in flight finish; later calls reject with
   * CANCELLED. Open watches end (their loops finish without error) and leases
   * stop renewing (their sessions expire after their ttl; no `lost`).
   */
  close(): void {
    this.closed = true;
    for (const w of [...this.watches]) w.close();
    for (const l of [...this.leases]) l.close();
    this.stub.close();
  }

  /**
   * Runs `call` (attempt 1, 2, ...) until it succeeds, fails with anything
   * but UNAVAILABLE, runs out of attempts, or the next pause would pass the
   * deadline, which is one for all attempts (the client's timeoutMs).
   */
  private async withRetries<Res>(method: RetryEvent["method"], call: (deadline: number | undefined) => Promise<Res>): Promise<Res> {
    const deadline = this.timeoutMs > 0 ? Date.now() + this.timeoutMs : undefined;
    const r = this.retry;
    for (let attempt = 1; ; attempt++) {
      try {
        return await call(deadline);
      } catch (err) {
        if (r === undefined || attempt >= r.maxAttempts || this.closed) throw err;
        if (!(err instanceof SessionRegistryError) || err.code !== status.UNAVAILABLE) throw err;
        // Exponential, with "equal jitter": half the step fixed, half random.
        const step = Math.min(r.maxBackoffMs, r.initialBackoffMs * 2 ** (attempt - 1));
        const pause = step / 2 + Math.random() * (step / 2);
        if (deadline !== undefined && Date.now() + pause >= deadline) throw err;
        this.onRetry?.({ method, attempt, maxAttempts: r.maxAttempts, error: err, delayMs: pause });
        await new Promise((resolve) => setTimeout(resolve, pause));
        // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- close() may have run during the pause
        if (this.closed) throw err;
      }
    }
  }

  /** The caller's request_id, else a fresh one when retries are on, else none. */
  private requestId(given: string | undefined): string {
    return given ?? (this.retry === undefined ? "" : randomUUID());
  }

  /** One unary call of `method`, a stub method bound to the stub, with the client's metadata and deadline. */
  private unary<Req, Res>(method: UnaryMethod<Req, Res>, request: NoInfer<Req>, deadline?: number): Promise<Res> {
    // grpc-js throws a plain Error for a call on a closed channel; report it
    // as gRPC Go does ("client connection is closing"), as a typed CANCELLED.
    if (this.closed) {
      return Promise.reject(new SessionRegistryError({ code: status.CANCELLED, details: "the client is closed" }));
    }
    const at = deadline ?? (this.timeoutMs > 0 ? Date.now() + this.timeoutMs : undefined);
    const options: Partial<CallOptions> = at !== undefined ? { deadline: at } : {};
    return new Promise((resolve, reject) => {
      method(request, this.metadata.clone(), options, (error, response) => {
        if (error) reject(fromServiceError(error));
        else resolve(response);
      });
    });
  }
}

/** A full Session message from the writable fields; output-only fields stay unset. */
function sessionMessage(s: {
  id?: string;
  name?: string;
  projectPath?: string;
  metadata?: SessionMetadata | undefined;
  ttl: Duration | undefined;
}): Session {
  return {
    id: s.id ?? "",
    name: s.name ?? "",
    projectPath: s.projectPath ?? "",
    metadata: toMap(s.metadata),
    createTime: undefined,
    updateTime: undefined,
    revision: 0,
    ttl: s.ttl,
    expireTime: undefined,
    tableUid: "",
  };
}

function retryOptions(o: RetryOptions): Required<RetryOptions> {
  const r = {
    maxAttempts: o.maxAttempts ?? DEFAULT_RETRY.maxAttempts,
    initialBackoffMs: o.initialBackoffMs ?? DEFAULT_RETRY.initialBackoffMs,
    maxBackoffMs: o.maxBackoffMs ?? DEFAULT_RETRY.maxBackoffMs,
  };
  for (const [key, min] of [
    ["maxAttempts", 1],
    ["initialBackoffMs", 0],
    ["maxBackoffMs", 0],
  ] as const) {
    const value = r[key];
    if (typeof value !== "number" || !Number.isFinite(value) || value < min || (key === "maxAttempts" && !Number.isInteger(value))) {
      throw new TypeError(`retry.${key} must be a ${key === "maxAttempts" ? "whole number" : "number"} >= ${min}; got ${String(value)}`);
    }
  }
  return r;
}

function impliedMask(req: UpdateInput): UpdatePath[] {
  const mask: UpdatePath[] = [];
  if (req.name !== undefined) mask.push("name");
  if (req.projectPath !== undefined) mask.push("project_path");
  if (req.metadata !== undefined) mask.push("metadata");
  if (req.ttlMs !== undefined) mask.push("ttl");
  return mask;
}

type LookupOneof = { $case: "id"; value: string } | { $case: "projectPath"; value: string } | { $case: "name"; value: string };

// Checked here as well as on the server: a plain-JS caller (or a cast) could
// pass several keys, and the oneof would silently keep only one of them.
function lookupCase(key: LookupKey): LookupOneof {
  const cases = (["id", "projectPath", "name"] as const).filter((k) => key[k] !== undefined);
  const [only] = cases;
  if (cases.length !== 1 || only === undefined) {
    throw new TypeError(`lookup needs exactly one of id, projectPath or name; got ${cases.length}`);
  }
  return { $case: only, value: String(key[only]) };
}

/** Milliseconds to a Duration; undefined, null and 0 mean no ttl. */
function toDuration(ms: number | null | undefined): Duration | undefined {
  if (ms === undefined || ms === null || ms === 0) return undefined;
  const seconds = Math.trunc(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1_000_000) };
}

function toMap(metadata: SessionMetadata | undefined): Map<string, string> {
  if (metadata === undefined) return new Map();
  // instanceof cannot tell a ReadonlyMap from a Record by type alone.
  if (metadata instanceof Map) return new Map(metadata as ReadonlyMap<string, string>);
  return new Map(Object.entries(metadata as Record<string, string>));
}

// The daemon always fills these; a response without one is a broken server,
// reported as INTERNAL rather than handing callers an undefined.
function required<T>(value: T | undefined, field: string): T {
  if (value === undefined) {
    throw new SessionRegistryError({ code: status.INTERNAL, details: `response is missing ${field}` });
  }
  return value;
}
