/**
 * The HTTP face of the Registry: SessionRegistry over the Connect protocol
 * (JSON and binary) and gRPC-Web, through @connectrpc/connect-node, on the
 * same RegistryCalls (../calls.ts) as the gRPC transport: same method table,
 * validation, errors, auth, logs, metrics and Watch streams.
 *
 * Connect decodes a request into protoc-gen-es's message; its binary form is
 * then decoded by the gRPC transport's codec (../codecs.ts), so both wires
 * hand RegistryCalls the same generated object (strict UTF-8 included), and
 * each response goes back the same way. The bytes between are the proto's
 * own encoding: the two generated forms agree on it by construction.
 *
 * The caller's token and role are checked at the headers, before connect
 * reads the body: a refused call is answered at once, in the protocol the
 * request speaks, and its connection closed. Then the request claims one of
 * the daemon's read slots (../read-slots.ts), which gRPC calls claim too:
 * it waits unread for one, or is refused UNAVAILABLE like a gRPC call when
 * too many wait. Other paths go to `fallback`.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

import { fromBinary, toBinary, type DescMessage } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  createContextKey,
  createContextValues,
  type ConnectRouter,
  type HandlerContext,
  type ServiceImpl,
} from "@connectrpc/connect";
import { codeToHttpStatus, endStreamFlag, endStreamToJson, errorToJsonBytes } from "@connectrpc/connect/protocol-connect";
import { encodeEnvelope } from "@connectrpc/connect/protocol";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { connectNodeAdapter } from "@connectrpc/connect-node";
import { status } from "@grpc/grpc-js";

import { ERROR_DOMAIN } from "../../core/errors.js";
import { BadRequestSchema, ErrorInfoSchema } from "../../gen/google/rpc/error_details_pb.js";
import { SessionRegistry } from "../../gen/sessionregistry/v1/session_registry_pb.js";
import { REQUIRED_ROLE, isStreaming, type HeaderSource, type RpcMethod } from "../auth.js";
import type { RegistryCalls, UnaryMethod } from "../calls.js";
import { registryCodec, type RegistryCodec } from "../codecs.js";
import { BUSY_MESSAGE, type ReadSlots } from "../read-slots.js";
import type { StatusSpec } from "../status.js";
import type { WatchCall } from "../watch-stream.js";

export const REGISTRY_PATH_PREFIX = `/${SessionRegistry.typeName}/`;

/** Messages a Watch may have handed to connect and not yet sent before it counts as pushing back. */
const WATCH_HIGH_WATER = 16;

export interface ConnectHandlerOptions {
  /** The largest request body, in bytes (--max-receive-message-size). */
  readMaxBytes: number;
  /** The largest response message, in bytes. */
  writeMaxBytes: number;
  /** Serves what is not a SessionRegistry method; default: 404. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void;
  /** The daemon's read slots (--max-pending-requests), shared with gRPC; without them a request is read at once. */
  slots?: ReadSlots;
}

type NodeHandler = (req: IncomingMessage, res: ServerResponse) => void;

const PEER = createContextKey("", { description: "the client's address" });
const RESPONSE = createContextKey<ServerResponse | undefined>(undefined, { description: "the node response the call answers on" });

/** The node request handler serving SessionRegistry over Connect and gRPC-Web. */
export function connectHandler(calls: RegistryCalls, options: ConnectHandlerOptions): NodeHandler {
  const adapter = connectNodeAdapter({
    routes: (router: ConnectRouter) => router.service(SessionRegistry, serviceImpl(calls)),
    // gRPC proper needs HTTP/2 trailers; it has its own listener (--listen).
    grpc: false,
    grpcWeb: true,
    connect: true,
    readMaxBytes: options.readMaxBytes,
    writeMaxBytes: options.writeMaxBytes,
    contextValues: (req) =>
      createContextValues()
        .set(PEER, peerOf(req as IncomingMessage))
        .set(RESPONSE, responses.get(req as IncomingMessage)),
    fallback: (req, res) => (options.fallback ?? notFound)(req as IncomingMessage, res as ServerResponse),
  });
  // Which response answers a request: connect hands an implementation the request only.
  const responses = new WeakMap<IncomingMessage, ServerResponse>();
  return (req, res) => {
    const method = registryMethod(req.url ?? "");
    if (method === undefined) {
      adapter(req, res);
      return;
    }
    if (isStreaming(method)) responses.set(req, res);
    const refusal = calls.checkHeaders(method, nodeHeaders(req), () => peerOf(req));
    if (refusal !== undefined) {
      refuse(req, res, connectError(refusal));
      return;
    }
    if (options.slots === undefined) {
      adapter(req, res);
      return;
    }
    readInSlot(
      options.slots,
      req,
      res,
      () => adapter(req, res),
      () => {
        calls.countTransportRefusal(method, status.UNAVAILABLE);
        refuse(req, res, new ConnectError(BUSY_MESSAGE, Code.Unavailable));
      },
    );
  };
}

/**
 * Runs `read` once the request holds a read slot. Until then connect does
 * not touch it: node buffers no more of its body than the request stream's
 * high-water mark (16 KiB) and the socket chunk it came in, then stops
 * reading the socket. The slot goes once the body has been read to its end,
 * or the exchange is over. `busy`: refused, too many requests wait.
 */
function readInSlot(slots: ReadSlots, req: IncomingMessage, res: ServerResponse, read: () => void, busy: () => void): void {
  const { remoteAddress, remotePort } = req.socket;
  const claim = slots.claim(
    `http|${remoteAddress ?? ""}|${remotePort ?? ""}`,
    read,
    // HTTP/1.1 cannot end one request while its body is arriving: its connection goes (pipelined requests alone hold two slots).
    () => req.socket.destroy(),
  );
  if (claim === undefined) {
    busy();
    return;
  }
  req.once("end", claim.settle);
  req.once("close", claim.settle);
  res.once("close", claim.settle);
}

/** Every SessionRegistry method, generically: decode with the gRPC codec, run through RegistryCalls, encode back. */
function serviceImpl(calls: RegistryCalls): ServiceImpl<typeof SessionRegistry> {
  const impl: Record<string, unknown> = {};
  for (const method of SessionRegistry.methods) {
    const codec = registryCodec(method.name);
    if (method.methodKind === "server_streaming") {
      const start =
        method.name === "WatchTables" ? (call: WatchCall<never>) => calls.watchTables(call) : (call: WatchCall<never>) => calls.watch(call);
      impl[method.localName] = (req: unknown, ctx: HandlerContext) =>
        watchStream(start, codec, codec.decode(toBinary(method.input, req as never)), ctx, method.output);
    } else {
      impl[method.localName] = async (req: unknown, ctx: HandlerContext) => {
        const outcome = await calls.unary(method.name as UnaryMethod, {
          request: codec.decode(toBinary(method.input, req as never)) as never,
          headers: fetchHeaders(ctx.requestHeader),
          peer: () => ctx.values.get(PEER),
          cancelled: () => ctx.signal.aborted,
        });
        if (!outcome.ok) throw connectError(outcome.error);
        return fromBinary(method.output, codec.encode(outcome.response));
      };
    }
  }
  return impl as ServiceImpl<typeof SessionRegistry>;
}

/**
 * A Watch (or WatchTables) as an async iterable that connect pulls and writes. Messages wait
 * in `ready` until pulled; past WATCH_HIGH_WATER the WatchStream is told to
 * hold them in its own bounded queue (write returns false), and is drained
 * when `ready` is empty again, the way grpc-js's 'drain' does.
 */
function watchStream<M>(
  start: (call: WatchCall<M>) => void,
  codec: RegistryCodec,
  request: unknown,
  ctx: HandlerContext,
  output: DescMessage,
): AsyncIterable<unknown> {
  const ready: M[] = [];
  // Fields, not lets: they change in callbacks, out of the loop's sight.
  const state: { blocked: boolean; closed: boolean; failed: StatusSpec | undefined } = { blocked: false, closed: false, failed: undefined };
  let wake: (() => void) | undefined;
  let handlers: { gone: () => void; drain: () => void } | undefined;
  const call: WatchCall<M> = {
    request,
    headers: fetchHeaders(ctx.requestHeader),
    peer: () => ctx.values.get(PEER),
    isCancelled: () => ctx.signal.aborted,
    isClosed: () => state.closed || ctx.signal.aborted,
    write: (message) => {
      ready.push(message);
      wake?.();
      if (ready.length < WATCH_HIGH_WATER) return true;
      state.blocked = true;
      return false;
    },
    sendHeaders: () => sendHead(ctx.values.get(RESPONSE), ctx.responseHeader),
    fail: (error) => {
      state.failed = error;
      state.closed = true;
      wake?.();
    },
    listen: (h) => {
      handlers = h;
      const onAbort = () => {
        state.closed = true;
        wake?.();
        h.gone();
      };
      ctx.signal.addEventListener("abort", onAbort);
      return () => {
        handlers = undefined;
        ctx.signal.removeEventListener("abort", onAbort);
      };
    },
  };
  start(call);
  return (async function* () {
    try {
      for (;;) {
        const next = ready.shift();
        if (next !== undefined) {
          yield fromBinary(output, codec.encode(next));
          continue;
        }
        if (state.blocked) {
          state.blocked = false;
          handlers?.drain();
          continue;
        }
        if (state.closed) break;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      if (state.failed !== undefined) throw connectError(state.failed);
    } finally {
      // Connect stopped pulling (the client left, a write failed): the watch ends here too.
      if (!state.closed) {
        state.closed = true;
        handlers?.gone();
      }
    }
  })();
}

/**
 * Sends a stream's response head now, before its first message. Connect
 * commits the head only with the first message: its stream handlers resolve
 * the response once the implementation has yielded (so that it may still
 * set headers), and its node adapter reads that first chunk before
 * writeHead; the protocols have no empty message to send instead. So this
 * writes the head connect would: 200 (both stream protocols put errors in
 * the body) and the call's response headers as connect negotiated them
 * (content type, compression). Connect's own writeHead, when the first
 * message comes, finds the head sent and is skipped.
 */
function sendHead(res: ServerResponse | undefined, headers: Headers): void {
  if (res === undefined || res.headersSent) return;
  res.writeHead(200, Object.fromEntries(headers));
  res.flushHeaders();
  // The head is out for good: connect's writeHead with the first message has nothing left to write.
  res.writeHead = () => res;
}

/** A status as Connect's error: same code and message, the ErrorInfo and BadRequest in `details`. */
export function connectError(spec: StatusSpec): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    { desc: ErrorInfoSchema, value: { reason: spec.reason, domain: ERROR_DOMAIN, metadata: { ...spec.metadata } } },
  ];
  const violations = spec.fieldViolations ?? [];
  if (violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: { fieldViolations: violations.map((v) => ({ field: v.field, description: v.description })) },
    });
  }
  // gRPC and Connect number their codes alike.
  // eslint-disable-next-line @typescript-eslint/no-unsafe-enum-assignment -- the same numbers
  const code = spec.code as number as Code;
  return new ConnectError(spec.message, code, undefined, details);
}

/**
 * Answers a call refused at its headers without reading its body, in the
 * protocol its content type names, through connect's own serializers; then
 * the connection closes, so the unread body goes with it.
 */
function refuse(req: IncomingMessage, res: ServerResponse, error: ConnectError): void {
  const contentType = req.headers["content-type"] ?? "";
  res.setHeader("connection", "close");
  if (contentType.startsWith("application/grpc-web")) {
    const headers = setTrailerStatus(new Headers({ "content-type": contentType }), error);
    res.writeHead(200, Object.fromEntries(headers));
    res.end();
  } else if (contentType.startsWith("application/connect+")) {
    const end = new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), error, undefined)));
    res.writeHead(200, { "content-type": contentType });
    res.end(encodeEnvelope(endStreamFlag, end));
  } else {
    res.writeHead(codeToHttpStatus(error.code), { "content-type": "application/json" });
    res.end(errorToJsonBytes(error, undefined));
  }
}

function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8" });
  res.end("not found\n");
}

/** The SessionRegistry method a request path names; undefined for any other path. */
function registryMethod(url: string): RpcMethod | undefined {
  const path = url.split("?", 1)[0]!;
  if (!path.startsWith(REGISTRY_PATH_PREFIX)) return undefined;
  const name = path.slice(REGISTRY_PATH_PREFIX.length);
  return Object.hasOwn(REQUIRED_ROLE, name) ? (name as RpcMethod) : undefined;
}

function nodeHeaders(req: IncomingMessage): HeaderSource {
  return {
    get: (key) => {
      const value = req.headers[key.toLowerCase()];
      return value === undefined ? [] : Array.isArray(value) ? value : [value];
    },
  };
}

function fetchHeaders(headers: Headers): HeaderSource {
  return {
    get: (key) => {
      const value = headers.get(key);
      return value === null ? [] : [value];
    },
  };
}

function peerOf(req: IncomingMessage): string {
  const { remoteAddress, remotePort } = req.socket;
  return remoteAddress === undefined ? "unknown" : `${remoteAddress.includes(":") ? `[${remoteAddress}]` : remoteAddress}:${remotePort}`;
}
