/**
 * What a SessionRegistry call does whatever wire it came over: which
 * Registry call each method makes and which ids it logs, the caller's
 * authentication and authorization, how the outcome is logged and counted,
 * and the Watch and WatchTables streams. The wire adapters (./service.ts for gRPC,
 * ./connect/ for HTTP) decode a request into the generated messages, hand it
 * here, and put the outcome on their wire: a rule lives here once.
 *
 * With an Authorizer, every call is authenticated and authorized (./auth.ts)
 * before anything else, its request's validation included. The adapters
 * have checked token and role at the headers already, before reading the
 * request; they are checked again here with the request's table, which only
 * the request names. With an RpcRecorder (the daemon's metrics), every call
 * is counted once, when it ends.
 */
import { status } from "@grpc/grpc-js";

import type { MemoryBudget } from "../core/budget.js";
import { RegistryError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import { resolveTable, type Registry } from "../core/registry.js";
import type { ServerInfoSource } from "../core/server-info.js";
import type * as pb from "../gen/sessionregistry/v1/session_registry.js";
import { isStreaming, type Authorizer, type HeaderSource, type Principal, type RpcMethod } from "./auth.js";
import { MalformedRequest } from "./codecs.js";
import { toProtoSession, toProtoTable } from "./convert.js";
import { clipForLog } from "./log-fields.js";
import {
  GRPC_CODE,
  INTERNAL_MESSAGE,
  isAuthError,
  logRejection,
  outcomeOf,
  statusSpecOf,
  type RpcRecorder,
  type StatusSpec,
} from "./status.js";
import { TablesStreams } from "./tables-stream.js";
import { WatchStreams, type WatchCall } from "./watch-stream.js";

/** The ids a log line may carry about a call; never whole payloads. */
interface CallIds {
  table?: string;
  // Undefined when the request names no session (no session message, a lookup by path or name).
  sessionId?: string | undefined;
}

/** Each unary method's request and response, as generated. */
interface UnaryTypes {
  CreateTable: [pb.CreateTableRequest, pb.CreateTableResponse];
  GetTable: [pb.GetTableRequest, pb.GetTableResponse];
  ListTables: [pb.ListTablesRequest, pb.ListTablesResponse];
  DeleteTable: [pb.DeleteTableRequest, pb.DeleteTableResponse];
  Register: [pb.RegisterRequest, pb.RegisterResponse];
  Lookup: [pb.LookupRequest, pb.LookupResponse];
  List: [pb.ListRequest, pb.ListResponse];
  Update: [pb.UpdateRequest, pb.UpdateResponse];
  Remove: [pb.RemoveRequest, pb.RemoveResponse];
  KeepAlive: [pb.KeepAliveRequest, pb.KeepAliveResponse];
  GetServerInfo: [pb.GetServerInfoRequest, pb.GetServerInfoResponse];
}

export type UnaryMethod = keyof UnaryTypes;
export type RequestOf<M extends UnaryMethod> = UnaryTypes[M][0];
export type ResponseOf<M extends UnaryMethod> = UnaryTypes[M][1];

interface MethodSpec<Req, Res> {
  ids: (req: Req) => CallIds;
  run: (req: Req, principal: Principal | undefined) => Promise<Res>;
}

type MethodTable = { [M in UnaryMethod]: MethodSpec<RequestOf<M>, ResponseOf<M>> };

/** A unary call as an adapter hands it over. */
export interface UnaryCall<Req> {
  /** The decoded request, or a MalformedRequest (refused INVALID_ARGUMENT once the caller is checked). */
  request: Req | MalformedRequest;
  headers: HeaderSource;
  /** The client's address, for the log line of a refused token. */
  peer: () => string;
  /** Whether the client has already ended the call (it then counts as CANCELLED). */
  cancelled: () => boolean;
}

export type UnaryOutcome<Res> = { ok: true; response: Res } | { ok: false; error: StatusSpec };

export interface CallsOptions {
  /** The most messages one watcher may have waiting before it is ended as WATCHER_TOO_SLOW (default 1024). */
  watchQueue?: number;
  /** The most estimated bytes one watcher may have waiting before it is ended as WATCHER_TOO_SLOW (default: no limit). */
  watchQueueBytes?: number;
  /** What watch queues are charged to (the daemon's memory budget); default: unlimited. */
  budget?: MemoryBudget;
  /** Checks each call's bearer token; without one, every call is allowed. */
  authorizer?: Authorizer;
  /** Counts each call when it ends (the daemon's Metrics). */
  metrics?: RpcRecorder;
  /** What GetServerInfo answers; default: an unknown version and store, available. */
  serverInfo?: ServerInfoSource;
}

export class RegistryCalls {
  readonly watches: WatchStreams;
  readonly tableWatches: TablesStreams;
  private readonly authorizer: Authorizer | undefined;
  private readonly metrics: RpcRecorder | undefined;
  private readonly methods: MethodTable;

  constructor(
    registry: Registry,
    private readonly log: Logger,
    options: CallsOptions = {},
  ) {
    this.authorizer = options.authorizer;
    this.metrics = options.metrics;
    this.methods = methodTable(registry, options.serverInfo ?? (() => ({ version: "", store: "", storeAvailable: true })));
    const authorizer = this.authorizer;
    this.watches = new WatchStreams(registry, log, {
      queueLimit: options.watchQueue ?? 1024,
      ...(options.watchQueueBytes !== undefined ? { queueBytes: options.watchQueueBytes } : {}),
      ...(options.budget !== undefined ? { budget: options.budget } : {}),
      malformed: (request) => (request instanceof MalformedRequest ? request.error() : undefined),
      ...(authorizer !== undefined
        ? { authorize: (call: WatchCall) => void this.authorize(authorizer, "Watch", call.headers, call.request, (req) => req.table) }
        : {}),
      ...(this.metrics !== undefined ? { metrics: this.metrics } : {}),
    });
    this.tableWatches = new TablesStreams(registry, log, {
      malformed: (request) => (request instanceof MalformedRequest ? request.error() : undefined),
      ...(authorizer !== undefined
        ? {
            authorize: (call: WatchCall<pb.WatchTablesResponse>) =>
              this.authorize(authorizer, "WatchTables", call.headers, call.request, () => undefined).tables,
          }
        : {}),
      ...(this.metrics !== undefined ? { metrics: this.metrics } : {}),
    });
  }

  /** The Watch handler of every wire. Never throws. */
  watch(call: WatchCall): void {
    this.watches.handle(call);
  }

  /** The WatchTables handler of every wire. Never throws. */
  watchTables(call: WatchCall<pb.WatchTablesResponse>): void {
    this.tableWatches.handle(call);
  }

  /** Watch and WatchTables streams open now. */
  get openWatches(): number {
    return this.watches.size + this.tableWatches.size;
  }

  /** Ends every open Watch and WatchTables stream with `error`, and any that starts later. */
  endAllWatches(error: RegistryError): void {
    this.watches.endAll(error);
    this.tableWatches.endAll(error);
  }

  /**
   * Runs a unary call: checks the caller (when there is an authorizer), runs
   * the method (a synchronous throw counts as a rejection), logs and counts
   * the outcome. Never rejects: a failure is an outcome, and a bug in the
   * lines that report it still answers INTERNAL.
   */
  async unary<M extends UnaryMethod>(method: M, call: UnaryCall<RequestOf<M>>): Promise<UnaryOutcome<ResponseOf<M>>> {
    const spec = this.methods[method] as MethodSpec<RequestOf<M>, ResponseOf<M>>;
    const startedAt = this.metrics !== undefined ? performance.now() : 0;
    const request = call.request;
    let outcome: UnaryOutcome<ResponseOf<M>>;
    try {
      try {
        const principal =
          this.authorizer === undefined
            ? undefined
            : this.authorize(this.authorizer, method, call.headers, request, (req) => spec.ids(req).table);
        if (request instanceof MalformedRequest) throw request.error();
        outcome = { ok: true, response: await spec.run(request, principal) };
      } catch (err) {
        const callIds = this.callIds(spec.ids, request);
        if (err instanceof RegistryError) {
          logRejection(this.log, isAuthError(err) ? { method, ...callIds, peer: call.peer() } : { method, ...callIds }, err);
        }
        const { code, reason } = outcomeOf(err);
        outcome = { ok: false, error: statusSpecOf(err, this.log, { method, ...callIds }) };
        this.record(method, call.cancelled() ? status.CANCELLED : code, call.cancelled() ? undefined : reason, startedAt);
        return outcome;
      }
      // The fields are built only for a logger that writes them: this is every call's path.
      if (this.log.isLevelEnabled?.("debug") !== false) this.log.debug({ method, ...this.callIds(spec.ids, request) }, "rpc ok");
      this.record(method, call.cancelled() ? status.CANCELLED : status.OK, undefined, startedAt);
      return outcome;
    } catch (err) {
      // Only a bug in the lines above lands here (a throwing logger, say); still answer.
      try {
        this.log.error({ method, err }, "handler failed");
      } catch {
        // Nowhere left to report it.
      }
      return { ok: false, error: { code: status.INTERNAL, reason: "INTERNAL", message: INTERNAL_MESSAGE } };
    }
  }

  /**
   * Checks the caller's token and role at the headers, before the request
   * is read: the table is checked by `unary` and `watch`, once the request
   * is. Returns the refusal (logged and counted as the handlers do), or
   * undefined when the call may go on (or there is no authorizer).
   */
  checkHeaders(method: RpcMethod, headers: HeaderSource, peer: () => string): StatusSpec | undefined {
    if (this.authorizer === undefined) return undefined;
    const refusal = refuseCaller(this.authorizer, method, headers, this.log, peer);
    if (refusal === undefined) return undefined;
    this.record(method, GRPC_CODE[refusal.code], refusal.reason, isStreaming(method) ? undefined : performance.now());
    return statusSpecOf(refusal, this.log, { method });
  }

  /**
   * Counts a call that a wire adapter ended itself before it reached here
   * (refused at its headers without an ErrorInfo: the daemon was busy).
   */
  countTransportRefusal(method: RpcMethod, code: status): void {
    this.record(method, code, undefined, isStreaming(method) ? undefined : performance.now());
  }

  /**
   * Authenticates the call and authorizes its method on its table (empty
   * means `default`; none for ListTables, WatchTables and GetServerInfo, or when the request did not
   * decode: it is refused as INVALID_ARGUMENT next and touches nothing).
   * Throws UNAUTHENTICATED or PERMISSION_DENIED.
   */
  private authorize(
    authorizer: Authorizer,
    method: RpcMethod,
    headers: HeaderSource,
    request: unknown,
    table: (req: { table: string }) => string | undefined,
  ): Principal {
    const principal = authorizer.authenticate(headers);
    let resolved: string | undefined;
    if (!(request instanceof MalformedRequest)) {
      const named = table(request as { table: string });
      if (named !== undefined) resolved = resolveTable(named);
    }
    authorizer.authorize(principal, method, resolved);
    return principal;
  }

  /** Counts a finished call; metrics must never fail a call. */
  private record(method: RpcMethod, code: status, reason: string | undefined, startedAt: number | undefined): void {
    if (this.metrics === undefined) return;
    try {
      this.metrics.rpcEnded(method, code, reason, startedAt);
    } catch (err) {
      this.log.error({ method, err }, "recording metrics failed");
    }
  }

  private callIds<Req>(ids: (req: Req) => CallIds, request: Req | MalformedRequest): CallIds {
    try {
      const { table, sessionId } = ids(request as Req);
      const out: CallIds = {};
      // Log the table the call really touched.
      if (table !== undefined) out.table = clipForLog(resolveTable(table));
      if (sessionId) out.sessionId = clipForLog(sessionId);
      return out;
    } catch {
      return {};
    }
  }
}

/**
 * The caller's refusal at the headers (UNAUTHENTICATED, or PERMISSION_DENIED
 * for its role; no table yet), logged as the handlers log it; undefined when
 * it may call.
 */
export function refuseCaller(
  authorizer: Authorizer,
  method: RpcMethod,
  headers: HeaderSource,
  log: Logger,
  peer: () => string,
): RegistryError | undefined {
  try {
    authorizer.authorize(authorizer.authenticate(headers), method, undefined);
    return undefined;
  } catch (err) {
    if (!(err instanceof RegistryError)) throw err;
    logRejection(log, isAuthError(err) ? { method, peer: peer() } : { method }, err);
    return err;
  }
}

/** Which Registry call each method makes, and which ids its log lines carry. */
function methodTable(registry: Registry, serverInfo: ServerInfoSource): MethodTable {
  return {
    CreateTable: {
      ids: (req) => ({ table: req.table }),
      run: async (req) => {
        const { table, created } = await registry.createTable(req);
        return { table: toProtoTable(table), created };
      },
    },
    GetTable: {
      ids: (req) => ({ table: req.table }),
      run: async (req) => ({ table: toProtoTable(await registry.getTable(req)) }),
    },
    ListTables: {
      ids: () => ({}),
      run: async (_req, principal) => {
        let tables = await registry.listTables();
        // A token restricted to some tables sees those only; others do not exist for it.
        if (principal !== undefined && principal.tables !== undefined) {
          tables = tables.filter((t) => principal.tables!.has(t.name));
        }
        return { tables: tables.map(toProtoTable) };
      },
    },
    DeleteTable: {
      ids: (req) => ({ table: req.table }),
      run: async (req) => {
        await registry.deleteTable(req);
        return {};
      },
    },
    Register: {
      ids: (req) => ({ table: req.table, sessionId: req.session?.id }),
      run: async (req) => ({ session: toProtoSession(await registry.register(req)) }),
    },
    Lookup: {
      // Only an id is an id; a project path or a name is payload.
      ids: (req) => ({ table: req.table, sessionId: req.key?.$case === "id" ? req.key.value : undefined }),
      run: async (req) => ({ session: toProtoSession(await registry.lookup(req)) }),
    },
    List: {
      ids: (req) => ({ table: req.table }),
      run: async (req) => {
        const page = await registry.list(req);
        return {
          sessions: page.sessions.map(toProtoSession),
          nextPageToken: page.nextPageToken,
          totalSize: page.totalSize,
          revision: BigInt(page.revision),
          tableUid: page.tableUid,
        };
      },
    },
    Update: {
      ids: (req) => ({ table: req.table, sessionId: req.session?.id }),
      run: async (req) => ({ session: toProtoSession(await registry.update(req)) }),
    },
    Remove: {
      ids: (req) => ({ table: req.table, sessionId: req.id }),
      run: async (req) => {
        const removed = await registry.remove(req);
        return { session: removed === undefined ? undefined : toProtoSession(removed) };
      },
    },
    KeepAlive: {
      ids: (req) => ({ table: req.table, sessionId: req.id }),
      run: async (req) => ({ session: toProtoSession(await registry.keepAlive(req)) }),
    },
    GetServerInfo: {
      ids: () => ({}),
      run: () => {
        const { version, store, storeAvailable } = serverInfo();
        return Promise.resolve({ version, store, storeAvailable });
      },
    },
  };
}
