/**
 * The gRPC face of the Registry. Each handler decodes nothing itself (the
 * generated request objects already fit the Registry's inputs): it awaits the
 * Registry, converts the result to generated messages and answers exactly
 * once, with either the response or a status built by ./status.ts.
 *
 * With an Authorizer, every call is authenticated and authorized (./auth.ts)
 * before anything else, its request's validation included. The daemon's
 * CallGuard (./call-guard.ts) has checked token and role at the headers
 * already; they are checked again here with the request's table, which only
 * the request names. With an RpcRecorder (the daemon's metrics), every call
 * is counted once, when it ends.
 */
import { status, type handleUnaryCall, type Server, type ServerUnaryCall } from "@grpc/grpc-js";

import type { MemoryBudget } from "../core/budget.js";
import { RegistryError } from "../core/errors.js";
import { resolveTable, type Registry } from "../core/registry.js";
import type { Logger } from "../core/logger.js";
import type { ServerInfoSource } from "../core/server-info.js";
import {
  SessionRegistryService as SessionRegistryDefinition,
  type SessionRegistryServer,
} from "../gen/sessionregistry/v1/session_registry.js";
import type { Authorizer, Principal, RpcMethod } from "./auth.js";
import { MalformedRequest, withCodecs } from "./codecs.js";
import { toProtoSession, toProtoTable } from "./convert.js";
import { INTERNAL_MESSAGE, isAuthError, logRejection, outcomeOf, toServiceError, type RpcRecorder } from "./status.js";
import { WatchStreams } from "./watch-stream.js";
import { clipForLog } from "./log-fields.js";

/** The ids a log line may carry about a call; never whole payloads. */
interface CallIds {
  table?: string;
  // Undefined when the request names no session (no session message, a lookup by path or name).
  sessionId?: string | undefined;
}

export interface ServiceOptions {
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

export class SessionRegistryService {
  private readonly watches: WatchStreams;
  private readonly authorizer: Authorizer | undefined;
  private readonly metrics: RpcRecorder | undefined;
  private readonly serverInfo: ServerInfoSource;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    options: ServiceOptions = {},
  ) {
    this.authorizer = options.authorizer;
    this.metrics = options.metrics;
    this.serverInfo = options.serverInfo ?? (() => ({ version: "", store: "", storeAvailable: true }));
    const authorizer = this.authorizer;
    this.watches = new WatchStreams(registry, log, {
      queueLimit: options.watchQueue ?? 1024,
      ...(options.watchQueueBytes !== undefined ? { queueBytes: options.watchQueueBytes } : {}),
      ...(options.budget !== undefined ? { budget: options.budget } : {}),
      malformed: (request) => (request instanceof MalformedRequest ? request.error() : undefined),
      ...(authorizer !== undefined ? { authorize: (call) => void this.authorize(authorizer, "Watch", call, (req) => req.table) } : {}),
      ...(this.metrics !== undefined ? { metrics: this.metrics } : {}),
    });
  }

  /** Watch streams open now. */
  get openWatches(): number {
    return this.watches.size;
  }

  /**
   * Ends every open watch with `error`, and any that starts later. Shutdown
   * calls it with UNAVAILABLE (SHUTTING_DOWN) so that streams, which never
   * finish on their own, do not hold the server for the whole grace period.
   */
  endAllWatches(error: RegistryError): void {
    this.watches.endAll(error);
  }

  addToServer(server: Server): void {
    server.addService(withCodecs(SessionRegistryDefinition), this.implementation());
  }

  private implementation(): SessionRegistryServer {
    const registry = this.registry;
    const impl: SessionRegistryServer = {
      createTable: this.unary(
        "CreateTable",
        (req) => ({ table: req.table }),
        async (req) => {
          const { table, created } = await registry.createTable(req);
          return { table: toProtoTable(table), created };
        },
      ),
      getTable: this.unary(
        "GetTable",
        (req) => ({ table: req.table }),
        async (req) => ({ table: toProtoTable(await registry.getTable(req)) }),
      ),
      listTables: this.unary(
        "ListTables",
        () => ({}),
        async (_req, principal) => {
          let tables = await registry.listTables();
          // A token restricted to some tables sees those only; others do not exist for it.
          if (principal !== undefined && principal.tables !== undefined) {
            tables = tables.filter((t) => principal.tables!.has(t.name));
          }
          return { tables: tables.map(toProtoTable) };
        },
      ),
      deleteTable: this.unary(
        "DeleteTable",
        (req) => ({ table: req.table }),
        async (req) => {
          await registry.deleteTable(req);
          return {};
        },
      ),
      register: this.unary(
        "Register",
        (req) => ({ table: req.table, sessionId: req.session?.id }),
        async (req) => ({ session: toProtoSession(await registry.register(req)) }),
      ),
      lookup: this.unary(
        "Lookup",
        // Only an id is an id; a project path or a name is payload.
        (req) => ({ table: req.table, sessionId: req.key?.$case === "id" ? req.key.value : undefined }),
        async (req) => ({ session: toProtoSession(await registry.lookup(req)) }),
      ),
      list: this.unary(
        "List",
        (req) => ({ table: req.table }),
        async (req) => {
          const page = await registry.list(req);
          return {
            sessions: page.sessions.map(toProtoSession),
            nextPageToken: page.nextPageToken,
            totalSize: page.totalSize,
            revision: BigInt(page.revision),
            tableUid: page.tableUid,
          };
        },
      ),
      update: this.unary(
        "Update",
        (req) => ({ table: req.table, sessionId: req.session?.id }),
        async (req) => ({ session: toProtoSession(await registry.update(req)) }),
      ),
      remove: this.unary(
        "Remove",
        (req) => ({ table: req.table, sessionId: req.id }),
        async (req) => {
          const removed = await registry.remove(req);
          return { session: removed === undefined ? undefined : toProtoSession(removed) };
        },
      ),
      watch: (call) => this.watches.handle(call),
      keepAlive: this.unary(
        "KeepAlive",
        (req) => ({ table: req.table, sessionId: req.id }),
        async (req) => ({ session: toProtoSession(await registry.keepAlive(req)) }),
      ),
      getServerInfo: this.unary(
        "GetServerInfo",
        () => ({}),
        () => {
          const { version, store, storeAvailable } = this.serverInfo();
          return Promise.resolve({ version, store, storeAvailable });
        },
      ),
    };
    return impl;
  }

  /**
   * Wraps a unary method: checks the caller (when there is an authorizer),
   * runs `run` (a synchronous throw counts as a rejection), then calls back
   * exactly once and counts the call. Nothing escapes: grpc-js would turn a
   * throw into an UNKNOWN status at best and crash the process at worst.
   */
  private unary<Req, Res>(
    method: RpcMethod,
    ids: (req: Req) => CallIds,
    run: (req: Req, principal: Principal | undefined) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    const authorizer = this.authorizer;
    return (call, callback) => {
      const startedAt = this.metrics !== undefined ? performance.now() : 0;
      let answered = false;
      const answer = (code: status, reason: string | undefined, send: () => void) => {
        answered = true;
        this.record(method, call.cancelled ? status.CANCELLED : code, call.cancelled ? undefined : reason, startedAt);
        this.answer(method, call, send);
      };
      const request: unknown = call.request;
      new Promise<Res>((resolve) => {
        const principal = authorizer === undefined ? undefined : this.authorize(authorizer, method, call, (req) => ids(req as Req).table);
        if (request instanceof MalformedRequest) throw request.error();
        resolve(run(call.request, principal));
      })
        .then(
          (response) => {
            // The fields are built only for a logger that writes them: this is every call's path.
            if (this.log.isLevelEnabled?.("debug") !== false) this.log.debug({ method, ...this.callIds(ids, call) }, "rpc ok");
            answer(status.OK, undefined, () => callback(null, response));
          },
          (err: unknown) => {
            const callIds = this.callIds(ids, call);
            if (err instanceof RegistryError) {
              logRejection(this.log, isAuthError(err) ? { method, ...callIds, peer: call.getPeer() } : { method, ...callIds }, err);
            }
            const { code, reason } = outcomeOf(err);
            const error = toServiceError(err, this.log, { method, ...callIds });
            answer(code, reason, () => callback(error));
          },
        )
        // Only a bug in the lines above lands here (a throwing logger, say);
        // still answer, so the client does not wait for its deadline.
        .catch((err: unknown) => {
          try {
            this.log.error({ method, err }, "handler failed");
          } catch {
            // Nowhere left to report it.
          }
          if (!answered) answer(status.INTERNAL, "INTERNAL", () => callback({ code: status.INTERNAL, details: INTERNAL_MESSAGE }));
        });
    };
  }

  /**
   * Authenticates the call and authorizes its method on its table (empty
   * means `default`; none for ListTables and GetServerInfo, or when the request did not
   * decode: it is refused as INVALID_ARGUMENT next and touches nothing).
   * Throws UNAUTHENTICATED or PERMISSION_DENIED.
   */
  private authorize(
    authorizer: Authorizer,
    method: RpcMethod,
    call: { metadata: ServerUnaryCall<unknown, unknown>["metadata"]; request: unknown },
    table: (req: { table: string }) => string | undefined,
  ): Principal {
    const principal = authorizer.authenticate(call.metadata);
    const request = call.request;
    let resolved: string | undefined;
    if (!(request instanceof MalformedRequest)) {
      const named = table(request as { table: string });
      if (named !== undefined) resolved = resolveTable(named);
    }
    authorizer.authorize(principal, method, resolved);
    return principal;
  }

  /** Counts a finished call; metrics must never fail a call. */
  private record(method: RpcMethod, code: status, reason: string | undefined, startedAt: number): void {
    if (this.metrics === undefined) return;
    try {
      this.metrics.rpcEnded(method, code, reason, startedAt);
    } catch (err) {
      this.log.error({ method, err }, "recording metrics failed");
    }
  }

  /**
   * Calls back, swallowing what grpc-js might throw. A call that was
   * cancelled or ran past its deadline already has its status; grpc-js drops
   * the late answer, and the Registry's write (if any) stands.
   */
  private answer<Req, Res>(method: string, call: ServerUnaryCall<Req, Res>, send: () => void): void {
    if (call.cancelled) this.log.debug({ method }, "call ended before the registry answered");
    try {
      send();
    } catch (err) {
      this.log.error({ method, err }, "sending the response failed");
    }
  }

  private callIds<Req>(ids: (req: Req) => CallIds, call: { request: Req }): CallIds {
    try {
      const { table, sessionId } = ids(call.request);
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
