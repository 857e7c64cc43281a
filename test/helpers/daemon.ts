/**
 * Test helpers: a real daemon on 127.0.0.1:0 with SDK clients that are closed
 * before the daemon shuts down, and an assertion for rejected promises.
 */
import { expect } from "chai";
import { SessionRegistryClient } from "@session-registry/client";

import { DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { silentLogger } from "../../src/daemon/logger.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/server.js";
import type { Store } from "../../src/core/store.js";
import { RawRegistry } from "./raw.js";

export type ClientOptions = ConstructorParameters<typeof SessionRegistryClient>[1];

export interface TestDaemon {
  daemon: RunningDaemon;
  /** "127.0.0.1:PORT" */
  address: string;
  /** A new SDK client on the daemon; closed by stop(). */
  client(options?: ClientOptions): SessionRegistryClient;
  /** A new client of the generated stubs, for requests the SDK cannot send; closed by stop(). */
  rawClient(): RawRegistry;
  /** Closes every client made here, then shuts the daemon down. */
  stop(): Promise<void>;
}

/**
 * Starts a daemon on 127.0.0.1:0; its HTTP listener is off, or on 127.0.0.1:0
 * with `http`, so that daemons never compete for the default port.
 */
export async function startTestDaemon(opts: { config?: Partial<DaemonConfig>; store?: Store; http?: boolean } = {}): Promise<TestDaemon> {
  const config: DaemonConfig = {
    ...DEFAULT_CONFIG,
    logLevel: "silent",
    ...opts.config,
    listen: "127.0.0.1:0",
    httpListen: opts.http === true ? "127.0.0.1:0" : undefined,
  };
  const daemon = await startDaemon(config, { logger: silentLogger, ...(opts.store !== undefined ? { store: opts.store } : {}) });
  const clients: { close(): void }[] = [];
  let stopped = false;
  return {
    daemon,
    address: daemon.address,
    client(options?: ClientOptions) {
      const c = new SessionRegistryClient(daemon.address, options);
      clients.push(c);
      return c;
    },
    rawClient() {
      const c = new RawRegistry(daemon.address);
      clients.push(c);
      return c;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      for (const c of clients.splice(0)) c.close();
      await daemon.shutdown();
    },
  };
}

/** Waits until `check()` holds, polling; bounded, for state a server changes on its own time. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

type ErrorClass<E> = abstract new (...args: never[]) => E;

/**
 * Awaits a promise that must reject with an instance of `errorClass` and
 * returns the error for further assertions.
 */
export async function expectError<E>(promise: Promise<unknown>, errorClass: ErrorClass<E>): Promise<E> {
  let value: unknown;
  try {
    value = await promise;
  } catch (err) {
    if (!(err instanceof errorClass)) {
      expect.fail(`expected a ${errorClass.name}, got ${describeError(err)}`);
    }
    return err;
  }
  return expect.fail(`expected a ${errorClass.name}, but the call succeeded with ${describeValue(value)}`);
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const e = err as Error & { code?: unknown; reason?: unknown };
    return `${e.constructor.name} (code ${String(e.code)}, reason ${String(e.reason)}): ${e.message}`;
  }
  return String(err);
}

function describeValue(value: unknown): string {
  try {
    const mapsAsObjects = (_k: string, v: unknown): unknown => (v instanceof Map ? Object.fromEntries(v as Map<string, unknown>) : v);
    // undefined for undefined, a function or a symbol, though the declared return type says string.
    const text = JSON.stringify(value, mapsAsObjects) as string | undefined;
    return text === undefined ? String(value) : text.length > 300 ? `${text.slice(0, 300)}…` : text;
  } catch {
    return String(value);
  }
}

let counter = 0;
const RUN = Math.random().toString(36).slice(2, 8);

/** A table name no other test uses (also across runs against a shared backend). */
export function uniqueName(prefix = "t"): string {
  counter += 1;
  return `${prefix}-${RUN}-${counter}`;
}

/**
 * For a describe block whose tests restart a memory daemon on the same
 * port (a new history there): `start(port)` starts one (port 0: any), and
 * `client(address)` makes a client whose channel reconnects fast, so that
 * a test does not wait out grpc-js's default 1 s backoff. Everything is
 * closed after the block.
 */
export function restartableDaemons(): {
  start(port?: number): Promise<RunningDaemon>;
  client(address: string): SessionRegistryClient;
} {
  const daemons: RunningDaemon[] = [];
  const clients: SessionRegistryClient[] = [];
  after(async () => {
    for (const c of clients) c.close();
    for (const daemon of daemons) await daemon.shutdown();
  });
  return {
    async start(port = 0) {
      // No HTTP listener: the default port would be shared with any other daemon on this machine.
      const config: DaemonConfig = { ...DEFAULT_CONFIG, logLevel: "silent", listen: `127.0.0.1:${port}`, httpListen: undefined };
      const daemon = await startDaemon(config, { logger: silentLogger });
      daemons.push(daemon);
      return daemon;
    },
    client(address) {
      const c = new SessionRegistryClient(address, {
        channelOptions: { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200 },
      });
      clients.push(c);
      return c;
    },
  };
}
