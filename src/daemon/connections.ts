/**
 * The daemon's listening sockets, in front of grpc-js.
 *
 * grpc-js's own listener (bindAsync) accepts every connection and keeps it
 * for as long as the peer likes: one that sends nothing, trickles the
 * HTTP/2 preface or never starts its TLS handshake is never closed, and
 * enough of them use up the process's file descriptors and lock everyone
 * out. So the daemon accepts connections itself, on a net.Server per
 * address, and hands each one to grpc-js through a connection injector
 * (Server.createConnectionInjector), which runs TLS and HTTP/2 on it exactly
 * as bindAsync would (credentials, keepalive, idle and age limits, GOAWAY on
 * shutdown). Before handing it over, the gate:
 *
 * - at `maxConnections` open, makes room by closing the oldest connection
 *   that has not started a call yet, and closes the new one only when every
 *   open connection has: connections that send nothing can then not hold
 *   the cap against clients that call, and the open-file limit is never
 *   reached (accept() would fail for everyone);
 * - closes it when it has not started a call within `setupTimeoutMs`
 *   (CallGuard tells the gate of each call's connection, by its remote
 *   address and port). Once it has, grpc-js's idle timeout takes over.
 *
 * Both are logged once per interval with a count, never once per connection.
 *
 * Shutdown needs nothing of the injector itself: its HTTP/2 server and
 * sessions are grpc-js's, so tryShutdown and forceShutdown close them as
 * they close bindAsync's. The gate closes its listening sockets first, and
 * after grpc-js any socket that never became a session.
 */
import { lookup } from "node:dns/promises";
import { createServer, type AddressInfo, type Server as NetServer, type Socket } from "node:net";

import { IntervalLog } from "../core/interval-log.js";
import type { Logger } from "../core/logger.js";
import type { CallConnection } from "../transport/call-guard.js";

/** What Server.createConnectionInjector returns. */
export interface ConnectionInjector {
  injectConnection(socket: Socket): void;
  drain(graceMs: number): void;
  destroy(): void;
}

export interface ConnectionGateOptions {
  maxConnections: number;
  setupTimeoutMs: number;
  /** How often a repeated refusal or closing is logged (a count per interval). */
  logIntervalMs: number;
  /** After a request timeout, how long the status has to reach the client before the connection is closed. */
  closeDelayMs: number;
  /** Told of each connection the gate closes on its own, and why (the daemon's metrics). */
  closed?: (reason: GateCloseReason) => void;
}

/**
 * Why the gate closed a connection: refused at the cap, closed at the cap to
 * make room (it had started no call), the setup timeout, or a request timeout on it.
 */
export type GateCloseReason = "max_connections" | "evicted" | "setup_timeout" | "request_timeout";

interface Connection {
  readonly socket: Socket;
  /** Its byPeer key, kept: a closed socket no longer knows its peer. */
  readonly key: string;
  setupTimer: NodeJS.Timeout | undefined;
  /** closeSoon was called: the socket goes after closeDelayMs. */
  closing: boolean;
}

export class ConnectionGate {
  private readonly servers: NetServer[] = [];
  private readonly open = new Set<Connection>();
  /** The open connections that have started no call, oldest first (a Set keeps insertion order). */
  private readonly unstarted = new Set<Connection>();
  /** remoteAddress|remotePort -> connection: how a call (which knows only those) finds its connection. */
  private readonly byPeer = new Map<string, Connection>();
  private readonly refusedLog: IntervalLog;
  private readonly setupLog: IntervalLog;
  private readonly evictedLog: IntervalLog;

  constructor(
    private readonly injector: ConnectionInjector,
    private readonly options: ConnectionGateOptions,
    private readonly log: Logger,
  ) {
    this.refusedLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, maxConnections: options.maxConnections },
          "refused connections: --max-connections are open; raise it (and ulimit -n) if these clients are legitimate",
        ),
      options.logIntervalMs,
    );
    this.evictedLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, maxConnections: options.maxConnections },
          "closed connections that had started no call to make room for new ones: --max-connections are open",
        ),
      options.logIntervalMs,
    );
    this.setupLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, setupTimeoutMs: options.setupTimeoutMs },
          "closed connections that started no call in time (--connection-setup-timeout)",
        ),
      options.logIntervalMs,
    );
  }

  /** Connections open now. */
  get size(): number {
    return this.open.size;
  }

  /**
   * Listens on every address `host` resolves to, on `port`, or for port 0 on
   * the port the first address got. Like grpc-js's bindAsync, one address
   * bound is enough (`localhost` may name an IPv6 address a host lacks).
   * Resolves with the port; when none binds, rejects with the first error.
   */
  async listen(host: string, port: number): Promise<number> {
    const addresses = await lookup(host, { all: true });
    let bound: number | undefined;
    let firstError: unknown;
    for (const { address } of addresses) {
      const server = createServer((socket) => this.accept(socket));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once("error", reject);
          server.listen({ host: address, port: bound ?? port }, () => {
            server.off("error", reject);
            resolve();
          });
        });
      } catch (err) {
        firstError ??= err;
        continue;
      }
      this.servers.push(server);
      // Accept errors (EMFILE and the like) are the system's; libuv retries, the daemon logs.
      server.on("error", (err) => this.log.error({ err }, "accepting connections failed"));
      bound ??= (server.address() as AddressInfo).port;
    }
    if (bound === undefined) throw firstError;
    return bound;
  }

  /** A call started on `connection`: it is set up, and no longer on the setup clock. */
  callStarted(connection: CallConnection): void {
    const entry = this.byPeer.get(peerKey(connection.remoteAddress, connection.remotePort));
    if (entry?.setupTimer === undefined) return;
    clearTimeout(entry.setupTimer);
    entry.setupTimer = undefined;
    this.unstarted.delete(entry);
  }

  /** Closes `connection` after closeDelayMs, the time for what was just sent on it to leave. */
  closeSoon(connection: CallConnection): void {
    const entry = this.byPeer.get(peerKey(connection.remoteAddress, connection.remotePort));
    if (entry === undefined || entry.closing) return;
    entry.closing = true;
    this.count("request_timeout");
    setTimeout(() => entry.socket.destroy(), this.options.closeDelayMs).unref();
  }

  /**
   * Stops accepting: the listening sockets close at once, so new connections
   * are refused by the system; open ones stay. (close()'s callback would wait
   * for every open connection, which grpc-js's shutdown ends.)
   */
  stopAccepting(): void {
    for (const server of this.servers.splice(0)) if (server.listening) server.close();
  }

  /** Closes the connections that have not started a call: at shutdown they have nothing to finish. */
  closeUnstarted(): void {
    for (const entry of this.open) if (entry.setupTimer !== undefined) entry.socket.destroy();
  }

  /** Closes every connection left (after grpc-js's forceShutdown) and writes the logs' last counts. */
  closeAll(): void {
    for (const entry of this.open) entry.socket.destroy();
    this.refusedLog.flush();
    this.evictedLog.flush();
    this.setupLog.flush();
  }

  private accept(socket: Socket): void {
    // Errors on a connection (a reset peer) end it; grpc-js sees them too once it has the socket.
    socket.on("error", () => {});
    if (this.open.size >= this.options.maxConnections) {
      const oldest = this.unstarted.values().next().value;
      if (oldest === undefined) {
        this.refusedLog.add();
        this.count("max_connections");
        socket.destroy();
        return;
      }
      this.evictedLog.add();
      this.count("evicted");
      this.forget(oldest);
      oldest.socket.destroy();
    }
    const key = peerKey(socket.remoteAddress, socket.remotePort);
    const entry: Connection = {
      socket,
      key,
      closing: false,
      setupTimer: setTimeout(() => {
        entry.setupTimer = undefined;
        this.unstarted.delete(entry);
        this.setupLog.add();
        this.count("setup_timeout");
        socket.destroy();
      }, this.options.setupTimeoutMs),
    };
    this.open.add(entry);
    this.unstarted.add(entry);
    this.byPeer.set(key, entry);
    socket.once("close", () => this.forget(entry));
    this.injector.injectConnection(socket);
  }

  /** Takes a connection off every list (it is closed, or being closed). */
  private forget(entry: Connection): void {
    clearTimeout(entry.setupTimer);
    entry.setupTimer = undefined;
    this.open.delete(entry);
    this.unstarted.delete(entry);
    if (this.byPeer.get(entry.key) === entry) this.byPeer.delete(entry.key);
  }

  private count(reason: GateCloseReason): void {
    try {
      this.options.closed?.(reason);
    } catch (err) {
      this.log.error({ err }, "recording metrics failed");
    }
  }
}

function peerKey(address: string | undefined, port: number | undefined): string {
  return `${address ?? ""}|${port ?? ""}`;
}
