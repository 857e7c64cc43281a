/**
 * The HTTP listener (--http-listen): node's HTTP/1.1 server, https with the
 * same TLS files as gRPC, serving SessionRegistry over Connect and gRPC-Web
 * (../transport/connect/service.ts). Loaded only when the flag is on.
 *
 * connect and the descriptors it serves from cost more start-up time than
 * the rest of the daemon, so the port is bound at start-up (a port in use
 * still stops it) and the handler is loaded just after: once start-up is
 * over, or at the first request if that comes sooner, which then waits for it.
 *
 * Hostile clients: request headers and bodies must arrive within
 * --request-timeout (else 408 and the connection closes), bodies are
 * bounded by --max-receive-message-size and read in the daemon's read slots
 * (../transport/read-slots.ts), and at most --max-connections connections
 * are open (node drops the rest as they arrive). Connections open, dropped
 * and timed out are told to the daemon's metrics, as the gRPC listener's are.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";
import type { Socket } from "node:net";

import type { Logger } from "../core/logger.js";
import type { DaemonConfig } from "./config.js";
import type { GateCloseReason } from "./connections.js";
import { listenOn } from "./listen-error.js";
import type { ServerTransport } from "./tls.js";

/** How often shutdown closes the connections that have gone idle. */
const IDLE_CHECK_MS = 50;

export interface HttpServer {
  /** `host:port` with the bound port. */
  address: string;
  /** "http" or "https". */
  scheme: string;
  /** Connections open now. */
  readonly connections: number;
  /** Stops accepting, ends idle connections now and the rest after `graceMs`; watches are ended by their owner. */
  close(graceMs: number): Promise<void>;
}

export type RequestHandler = (req: IncomingMessage, res: ServerResponse) => void;

/** Told of each connection the listener closes on its own, and why, in the gRPC gate's terms (the daemon's metrics). */
export type HttpCloseListener = (reason: Extract<GateCloseReason, "max_connections" | "setup_timeout" | "request_timeout">) => void;

/** Binds --http-listen and serves every request with what `load` resolves to. */
export async function startHttpServer(
  config: DaemonConfig,
  transport: ServerTransport,
  log: Logger,
  load: () => Promise<RequestHandler>,
  closed?: HttpCloseListener,
): Promise<HttpServer> {
  let loaded: RequestHandler | undefined;
  let loading: Promise<RequestHandler> | undefined;
  const ready = () =>
    (loading ??= load().then((h) => {
      loaded = h;
      return h;
    }));
  const handler: RequestHandler = (req, res) => {
    if (loaded !== undefined) {
      loaded(req, res);
      return;
    }
    ready().then(
      (h) => h(req, res),
      (err: unknown) => {
        log.error({ err }, "loading the HTTP transport failed");
        res.writeHead(500, { "content-type": "text/plain; charset=utf-8", connection: "close" }).end("internal error\n");
      },
    );
  };
  const pem = transport.pem;
  const limits = {
    headersTimeout: config.requestTimeoutMs,
    requestTimeout: config.requestTimeoutMs,
    // How often node looks for requests past those timeouts; its default (30 s) would let a stalled one linger.
    connectionsCheckingInterval: Math.min(1000, config.requestTimeoutMs),
  };
  const server: Server =
    pem === undefined
      ? createHttpServer(limits, handler)
      : createHttpsServer(
          {
            ...limits,
            cert: pem.cert,
            key: pem.key,
            ...(pem.clientCa !== undefined ? { ca: pem.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        );
  server.maxConnections = config.maxConnections;
  server.maxHeadersCount = 100;
  const count = (reason: Parameters<HttpCloseListener>[0]) => {
    try {
      closed?.(reason);
    } catch (err) {
      log.error({ err }, "recording metrics failed");
    }
  };
  let open = 0;
  // The TCP connection, before any TLS: what holds a file descriptor.
  server.on("connection", (socket: Socket) => {
    open += 1;
    socket.once("close", () => (open -= 1));
  });
  server.on("drop", () => count("max_connections"));
  // Connections whose headers have come in whole at least once: a timeout on one is a request's, else its setup's.
  const started = new WeakSet<object>();
  server.on("request", (req: IncomingMessage) => started.add(req.socket));
  const address = await listenOn(server, "--http-listen", config.httpListen!);
  // A timer, not a microtask: the ready line goes out first.
  setTimeout(() => void ready().catch(() => undefined), 0).unref();
  // After listening, an error is a broken socket or the like: log it, keep serving.
  server.on("error", (err) => log.error({ err }, "http server error"));
  server.on("clientError", (err: NodeJS.ErrnoException, socket) => {
    log.debug({ err: err.message }, "http client error");
    // Headers or body not in within --request-timeout.
    const timedOut = err.code === "ERR_HTTP_REQUEST_TIMEOUT";
    if (timedOut) count(started.has(socket) ? "request_timeout" : "setup_timeout");
    if (socket.writable) socket.end(`HTTP/1.1 ${timedOut ? "408 Request Timeout" : "400 Bad Request"}\r\nconnection: close\r\n\r\n`);
    else socket.destroy();
  });

  let closing: Promise<void> | undefined;
  return {
    address,
    scheme: pem === undefined ? "http" : "https",
    get connections() {
      return open;
    },
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        // A keep-alive connection whose call ends during the grace (a watch ended at shutdown) goes as soon as it is idle.
        const idle = setInterval(() => server.closeIdleConnections(), IDLE_CHECK_MS);
        server.close(() => {
          clearTimeout(timer);
          clearInterval(idle);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
