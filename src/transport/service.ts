/**
 * The gRPC face of the Registry: grpc-js handlers over RegistryCalls
 * (./calls.ts), which holds what a call does whatever the wire. Requests
 * arrive decoded by ./codecs.ts; each unary handler answers exactly once,
 * with the response or a status built by ./status.ts, and each Watch runs
 * as a WatchStream (./watch-stream.ts) over the grpc-js stream.
 *
 * The daemon's CallGuard (./call-guard.ts) has checked token and role at the
 * headers already; RegistryCalls checks them again with the request's table.
 */
import {
  Metadata,
  type handleUnaryCall,
  type sendUnaryData,
  type Server,
  type ServerUnaryCall,
  type ServerWritableStream,
  type ServiceError,
} from "@grpc/grpc-js";

import type { RegistryError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { Registry } from "../core/registry.js";
import {
  SessionRegistryService as SessionRegistryDefinition,
  type SessionRegistryServer,
} from "../gen/sessionregistry/v1/session_registry.js";
import { RegistryCalls, type CallsOptions, type RequestOf, type ResponseOf, type UnaryCall, type UnaryMethod } from "./calls.js";
import { withCodecs } from "./codecs.js";
import { statusError } from "./status.js";
import type { WatchCall } from "./watch-stream.js";

export type ServiceOptions = CallsOptions;

export class SessionRegistryService {
  /** What every call does, whatever the wire; the HTTP transport serves the same. */
  readonly calls: RegistryCalls;

  constructor(
    registry: Registry,
    private readonly log: Logger,
    options: ServiceOptions = {},
  ) {
    this.calls = new RegistryCalls(registry, log, options);
  }

  /** Watch streams open now, over every wire. */
  get openWatches(): number {
    return this.calls.openWatches;
  }

  /**
   * Ends every open watch with `error`, and any that starts later, over
   * every wire. Shutdown calls it with UNAVAILABLE (SHUTTING_DOWN) so that
   * streams, which never finish on their own, do not hold the server for the
   * whole grace period.
   */
  endAllWatches(error: RegistryError): void {
    this.calls.endAllWatches(error);
  }

  addToServer(server: Server): void {
    server.addService(withCodecs(SessionRegistryDefinition), this.implementation());
  }

  private implementation(): SessionRegistryServer {
    return {
      createTable: this.unary("CreateTable"),
      getTable: this.unary("GetTable"),
      listTables: this.unary("ListTables"),
      deleteTable: this.unary("DeleteTable"),
      register: this.unary("Register"),
      lookup: this.unary("Lookup"),
      list: this.unary("List"),
      update: this.unary("Update"),
      remove: this.unary("Remove"),
      watch: (call) => this.calls.watch(grpcWatchCall(call)),
      watchTables: (call) => this.calls.watchTables(grpcWatchCall(call)),
      keepAlive: this.unary("KeepAlive"),
      getServerInfo: this.unary("GetServerInfo"),
    };
  }

  /** A unary handler: runs the call through RegistryCalls, then calls back exactly once. */
  private unary<M extends UnaryMethod>(method: M): handleUnaryCall<RequestOf<M>, ResponseOf<M>> {
    return (call, callback) => {
      void this.calls.unary(method, new GrpcUnaryCall(call)).then((outcome) => {
        if (outcome.ok) this.answer(method, call, callback, null, outcome.response);
        else this.answer(method, call, callback, statusError(outcome.error), undefined);
      });
    };
  }

  /**
   * Calls back, swallowing what grpc-js might throw. A call that was
   * cancelled or ran past its deadline already has its status; grpc-js drops
   * the late answer, and the Registry's write (if any) stands.
   */
  private answer<Req, Res>(
    method: string,
    call: ServerUnaryCall<Req, Res>,
    callback: sendUnaryData<Res>,
    error: ServiceError | null,
    response: Res | undefined,
  ): void {
    if (call.cancelled) this.log.debug({ method }, "call ended before the registry answered");
    try {
      callback(error, response);
    } catch (err) {
      this.log.error({ method, err }, "sending the response failed");
    }
  }
}

/** A grpc-js unary call as RegistryCalls takes it: one object per call, its methods on the prototype. */
class GrpcUnaryCall<Req, Res> implements UnaryCall<Req> {
  readonly request: Req;
  readonly headers: Metadata;

  constructor(private readonly call: ServerUnaryCall<Req, Res>) {
    this.request = call.request;
    this.headers = call.metadata;
  }

  peer(): string {
    return this.call.getPeer();
  }

  cancelled(): boolean {
    return this.call.cancelled;
  }
}

/** A grpc-js server stream as a WatchCall. */
function grpcWatchCall<Req, Res>(call: ServerWritableStream<Req, Res>): WatchCall<Res> {
  return {
    request: call.request,
    headers: call.metadata,
    peer: () => call.getPeer(),
    isCancelled: () => call.cancelled,
    isClosed: () => call.cancelled || call.destroyed || call.writableEnded,
    write: (message) => call.write(message),
    sendHeaders: () => call.sendMetadata(new Metadata()),
    // grpc-js turns an 'error' event into the status, sent after the writes already made.
    fail: (error) => call.emit("error", statusError(error)),
    listen: ({ gone, drain }) => {
      // 'cancelled': the client went away or the deadline passed. 'close' and
      // 'error' also cover grpc-js ending the call on its own (e.g. a message
      // too large to send); after any of them nothing more can be written.
      call.on("cancelled", gone);
      call.on("close", gone);
      call.on("error", gone);
      call.on("drain", drain);
      return () => {
        call.off("cancelled", gone);
        call.off("close", gone);
        call.off("error", gone);
        call.off("drain", drain);
      };
    },
  };
}
