/**
 * Wires a daemon together: store, Registry, the `default` table, and a gRPC
 * server serving SessionRegistry. Used by main.ts and by tests, which start
 * real daemons on 127.0.0.1:0.
 */
import * as grpc from "@grpc/grpc-js";

import { shuttingDown } from "../core/errors.js";
import { DEFAULT_TABLE, Registry } from "../core/registry.js";
import { MemoryStore } from "../store/memory.js";
import type { Store } from "../store/store.js";
import { SessionRegistryService } from "../transport/service.js";
import { parseListen, type DaemonConfig } from "./config.js";
import { createLogger, type Logger } from "./logger.js";

/** Responses are bounded by List's page cap; this leaves a wide margin and still stops a runaway message. */
export const MAX_SEND_MESSAGE_BYTES = 16 * 1024 * 1024;

export interface RunningDaemon {
  /** `host:port` with the bound port, e.g. "127.0.0.1:41234"; IPv6 hosts in brackets. */
  address: string;
  port: number;
  registry: Registry;
  /**
   * Stops accepting calls, ends open watches at once with UNAVAILABLE
   * (`SHUTTING_DOWN`), lets running unary calls finish for `graceMs`
   * (default: the config's shutdownGraceMs), then cancels the rest; closes
   * the store. Idempotent: later calls return the first call's promise.
   */
  shutdown(graceMs?: number): Promise<void>;
}

export interface DaemonDeps {
  /** A store to use instead of the one `config.store` names. The daemon owns it: shutdown closes it. */
  store?: Store;
  logger?: Logger;
}

/** Starts a daemon; rejects (with everything it opened closed again) if the store or the port fails. */
export async function startDaemon(config: DaemonConfig, deps: DaemonDeps = {}): Promise<RunningDaemon> {
  const log = deps.logger ?? createLogger({ level: config.logLevel });
  const { host } = parseListen(config.listen);
  const store = deps.store ?? createStore(config);
  const registry = new Registry(store, { maxWatchers: config.maxWatchers });

  const server = new grpc.Server({
    "grpc.max_receive_message_length": config.maxReceiveMessageBytes,
    "grpc.max_send_message_length": MAX_SEND_MESSAGE_BYTES,
  });
  const service = new SessionRegistryService(registry, log, { watchQueue: config.watchQueue });
  service.addToServer(server);

  let port: number;
  try {
    // Before binding, so that no client ever sees a daemon without its `default` table.
    await registry.createTable({ table: DEFAULT_TABLE, maxSessions: 0 });
    port = await bind(server, config.listen);
  } catch (err) {
    server.forceShutdown();
    await store.close().catch((closeErr: unknown) => log.warn({ err: closeErr }, "closing the store failed"));
    throw err;
  }

  const address = `${host.includes(":") ? `[${host}]` : host}:${port}`;
  log.info(
    {
      address,
      store: config.store,
      maxSessions: config.maxSessions,
      maxTables: config.maxTables,
      maxWatchers: config.maxWatchers,
      watchHistory: config.watchHistory,
      watchQueue: config.watchQueue,
    },
    "daemon started",
  );

  let stopping: Promise<void> | undefined;
  return {
    address,
    port,
    registry,
    shutdown(graceMs = config.shutdownGraceMs) {
      stopping ??= shutdown(server, service, store, graceMs, log);
      return stopping;
    },
  };
}

function createStore(config: DaemonConfig): Store {
  switch (config.store) {
    case "memory":
      return new MemoryStore({
        defaultMaxSessions: config.maxSessions,
        maxTables: config.maxTables,
        watchHistory: config.watchHistory,
      });
  }
}

/** bindAsync as a promise, with an error that says which address failed and why. */
function bind(server: grpc.Server, listen: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
      if (err) {
        reject(new Error(`cannot listen on ${listen}: ${describeBindError(err)}`, { cause: err }));
        return;
      }
      resolve(port);
    });
  });
}

/** grpc-js folds the system error into a long message; pull out the part a person acts on. */
function describeBindError(err: Error): string {
  const text = err.message;
  if (/EADDRINUSE/.test(text)) return "address already in use";
  if (/EACCES/.test(text)) return "permission denied";
  if (/EADDRNOTAVAIL/.test(text)) return "address not available on this machine";
  if (/ENOTFOUND|EAI_AGAIN|Name resolution failed/i.test(text)) return "host name does not resolve";
  return text;
}

/**
 * tryShutdown stops accepting calls and lets running ones finish; after the
 * grace, forceShutdown cancels the rest. Watches never finish on their own,
 * so they are ended right away with UNAVAILABLE, which tells their clients to
 * reconnect (elsewhere). The store is closed only once the server is down:
 * closing it clears the tables that running unary calls still use. The
 * promise settles when the server is down and the store closed, whichever
 * way the server got there.
 */
async function shutdown(
  server: grpc.Server,
  service: SessionRegistryService,
  store: Store,
  graceMs: number,
  log: Logger,
): Promise<void> {
  log.info({ graceMs, openWatches: service.openWatches }, "shutting down");
  await new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      log.warn({ graceMs }, "grace period over; cancelling the remaining calls");
      server.forceShutdown();
      resolve();
    }, graceMs);
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
    service.endAllWatches(shuttingDown());
  });
  try {
    await store.close();
  } catch (err) {
    log.warn({ err }, "closing the store failed");
  }
  log.info({}, "shut down");
}
