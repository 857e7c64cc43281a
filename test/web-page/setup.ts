/**
 * What the live page's browser tests and `npm run screenshot` share: Debian's
 * chromium driven by playwright-core, and a real daemon with its HTTP
 * listener (which serves the page) on loopback ports, with an SDK client
 * over gRPC to change its tables.
 */
import { SessionRegistryClient } from "@session-registry/client";
import { chromium, type Browser } from "playwright-core";

import { DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { silentLogger } from "../../src/daemon/logger.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/server.js";

export const CHROMIUM = "/usr/bin/chromium";

export function launchBrowser(): Promise<Browser> {
  // Chromium's sandbox cannot start as root (a container's usual user).
  const root = process.getuid?.() === 0;
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: root ? ["--no-sandbox"] : [] });
}

export interface PageDaemon {
  daemon: RunningDaemon;
  /** The page's address, e.g. http://127.0.0.1:41235/ */
  url: string;
  /** An SDK client over gRPC; with `token`, it sends that token. Closed by stop(). */
  client(token?: string): SessionRegistryClient;
  /** Closes the clients, then shuts the daemon down. */
  stop(): Promise<void>;
}

/** A memory-store daemon on 127.0.0.1 (port 0 for both listeners unless `config` names them). */
export async function startPageDaemon(config: Partial<DaemonConfig> = {}): Promise<PageDaemon> {
  const daemon = await startDaemon(
    { ...DEFAULT_CONFIG, logLevel: "silent", listen: "127.0.0.1:0", httpListen: "127.0.0.1:0", ...config },
    { logger: silentLogger },
  );
  if (daemon.httpUrl === undefined) throw new Error("the daemon has no HTTP listener");
  const clients: SessionRegistryClient[] = [];
  return {
    daemon,
    url: `${daemon.httpUrl}/`,
    client(token?: string) {
      const c = new SessionRegistryClient(daemon.address, token === undefined ? {} : { metadata: { authorization: `Bearer ${token}` } });
      clients.push(c);
      return c;
    },
    async stop() {
      for (const c of clients.splice(0)) c.close();
      await daemon.shutdown();
    },
  };
}
