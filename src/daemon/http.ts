/**
 * The HTTP listener (--http-listen): node's HTTP/1.1 server, https with the
 * same TLS files as gRPC, serving SessionRegistry over Connect and gRPC-Web
 * (../transport/connect/service.ts). Loaded only when the flag is on.
 *
 * Hostile clients: request headers and bodies must arrive within
 * --request-timeout, bodies are bounded by --max-receive-message-size, and
 * at most --max-connections connections are open (node drops the rest as
 * they arrive). Paths other than the API's are left to `fallback`: the live
 * page at `/`.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer as createHttpsServer } from "node:https";

import type { Logger } from "../core/logger.js";
import type { RegistryCalls } from "../transport/calls.js";
import { connectHandler } from "../transport/connect/service.js";
import { pageHandler } from "../transport/page.js";
import type { DaemonConfig } from "./config.js";
import { listenOn } from "./listen-error.js";
import type { ServerTransport } from "./tls.js";

export interface HttpServer {
  /** `host:port` with the bound port. */
  address: string;
  /** "http" or "https". */
  scheme: string;
  /** Stops accepting, ends idle connections now and the rest after `graceMs`; watches are ended by their owner. */
  close(graceMs: number): Promise<void>;
}

export interface HttpServerOptions {
  /** The largest response message, in bytes. */
  writeMaxBytes: number;
  /** Serves what is not a SessionRegistry method; default: the live page at `/` (../transport/page.ts), else 404. */
  fallback?: (req: IncomingMessage, res: ServerResponse) => void;
}

export async function startHttpServer(
  config: DaemonConfig,
  transport: ServerTransport,
  calls: RegistryCalls,
  log: Logger,
  options: HttpServerOptions,
): Promise<HttpServer> {
  const handler = connectHandler(calls, {
    readMaxBytes: config.maxReceiveMessageBytes,
    writeMaxBytes: options.writeMaxBytes,
    fallback: options.fallback ?? pageHandler(),
  });
  const pem = transport.pem;
  const server: Server =
    pem === undefined
      ? createHttpServer(handler)
      : createHttpsServer(
          {
            cert: pem.cert,
            key: pem.key,
            ...(pem.clientCa !== undefined ? { ca: pem.clientCa, requestCert: true, rejectUnauthorized: true } : {}),
          },
          handler,
        );
  server.headersTimeout = config.requestTimeoutMs;
  server.requestTimeout = config.requestTimeoutMs;
  server.maxConnections = config.maxConnections;
  server.maxHeadersCount = 100;
  const address = await listenOn(server, "--http-listen", config.httpListen!);
  // After listening, an error is a broken socket or the like: log it, keep serving.
  server.on("error", (err) => log.error({ err }, "http server error"));
  server.on("clientError", (err, socket) => {
    log.debug({ err: err.message }, "http client error");
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n");
    else socket.destroy();
  });

  let closing: Promise<void> | undefined;
  return {
    address,
    scheme: pem === undefined ? "http" : "https",
    close(graceMs) {
      closing ??= new Promise<void>((resolve) => {
        const timer = setTimeout(() => server.closeAllConnections(), graceMs);
        server.close(() => {
          clearTimeout(timer);
          resolve();
        });
        server.closeIdleConnections();
      });
      return closing;
    },
  };
}
