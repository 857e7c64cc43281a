/**
 * The gRPC face of the Registry. Each handler decodes nothing itself (the
 * generated request objects already fit the Registry's inputs): it awaits the
 * Registry, converts the result to generated messages and answers exactly
 * once, with either the response or a status built by ./status.ts.
 */
import {
  status,
  type handleUnaryCall,
  type MethodDefinition,
  type Server,
  type ServerUnaryCall,
  type ServiceDefinition,
} from "@grpc/grpc-js";

import { malformedRequest, RegistryError } from "../core/errors.js";
import { DEFAULT_TABLE, type Registry } from "../core/registry.js";
import type { Logger } from "../core/logger.js";
import {
  SessionRegistryService as SessionRegistryDefinition,
  type SessionRegistryServer,
} from "../gen/sessionregistry/v1/session_registry.js";
import { toProtoSession, toProtoTable } from "./convert.js";
import { INTERNAL_MESSAGE, toServiceError } from "./status.js";
import { WatchStreams } from "./watch-stream.js";

/** The ids a log line may carry about a call; never whole payloads. */
interface CallIds {
  table?: string;
  sessionId?: string;
}

export interface ServiceOptions {
  /** The most messages one watcher may have waiting before it is ended as WATCHER_TOO_SLOW (default 1024). */
  watchQueue?: number;
}

export class SessionRegistryService {
  private readonly watches: WatchStreams;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    options: ServiceOptions = {},
  ) {
    this.watches = new WatchStreams(registry, log, {
      queueLimit: options.watchQueue ?? 1024,
      malformed: (request) => (request instanceof MalformedRequest ? request : undefined),
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
    server.addService(tolerantDecoding(SessionRegistryDefinition), this.implementation());
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
        async () => ({ tables: (await registry.listTables()).map(toProtoTable) }),
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
    };
    return impl;
  }

  /**
   * Wraps a unary method: runs `run` (a synchronous throw counts as a
   * rejection), then calls back exactly once. Nothing escapes: grpc-js would
   * turn a throw into an UNKNOWN status at best and crash the process at worst.
   */
  private unary<Req, Res>(
    method: string,
    ids: (req: Req) => CallIds,
    run: (req: Req) => Promise<Res>,
  ): handleUnaryCall<Req, Res> {
    return (call, callback) => {
      let answered = false;
      const answer: typeof callback = (...args) => {
        answered = true;
        this.answer(method, call, () => callback(...args));
      };
      const request: unknown = call.request;
      new Promise<Res>((resolve) => {
        if (request instanceof MalformedRequest) throw malformedRequest(request.messageType, request.detail);
        resolve(run(call.request));
      })
        .then(
          (response) => {
            this.log.debug({ method, ...this.callIds(ids, call) }, "rpc ok");
            answer(null, response);
          },
          (err: unknown) => {
            const callIds = this.callIds(ids, call);
            if (err instanceof RegistryError) this.logRejected(method, callIds, err.code, err.reason);
            answer(toServiceError(err, this.log, { method, ...callIds }));
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
          if (!answered) answer({ code: status.INTERNAL, details: INTERNAL_MESSAGE });
        });
    };
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
      // An empty table means `default`; log the table the call really touched.
      if (table !== undefined) out.table = clip(table || DEFAULT_TABLE);
      if (sessionId) out.sessionId = clip(sessionId);
      return out;
    } catch {
      return {};
    }
  }

  private logRejected(method: string, ids: CallIds, code: string, reason: string): void {
    this.log.info({ method, code, reason, ...ids }, "rpc rejected");
  }
}

/**
 * Ids are logged before validation, so a rejected one may be any size; valid
 * ids and table names are at most 128 characters and are logged whole.
 */
function clip(id: string): string {
  return id.length <= 128 ? id : `${id.slice(0, 128)}…`;
}

/** What the decoder hands a handler when the request bytes do not parse. */
class MalformedRequest {
  constructor(
    readonly messageType: string,
    readonly detail: string,
  ) {}
}

/**
 * The service definition with decoders that never throw. grpc-js answers a
 * throwing decoder with a bare INTERNAL; bad bytes are the client's fault, so
 * the handler gets a MalformedRequest and answers INVALID_ARGUMENT with the
 * usual details instead.
 */
function tolerantDecoding<D extends ServiceDefinition>(definition: D): D {
  const tolerant: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as [string, MethodDefinition<unknown, unknown>][]) {
    // path is "/sessionregistry.v1.SessionRegistry/GetTable"; every request type is the method's name + "Request".
    const messageType = `sessionregistry.v1.${method.path.slice(method.path.lastIndexOf("/") + 1)}Request`;
    tolerant[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(messageType, err instanceof Error ? err.message : String(err));
        }
      },
    };
  }
  return tolerant as D;
}
