/**
 * The daemon's etcd options end to end: the ready line names the store and
 * its endpoints, an unreadable TLS file is a bad flag, the etcd password
 * never reaches a log, and /metrics counts the requests sent to etcd, which
 * show whether reads come from the read cache (--etcd-read-cache).
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

import { ConfigError, DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { createLogger } from "../../src/daemon/logger.js";
import { startDaemon } from "../../src/daemon/server.js";
import { startTestDaemon, uniqueName } from "../helpers/daemon.js";
import { suiteEtcd, uniquePrefix } from "../helpers/etcd.js";

/** The store_requests_total counts of a scrape, by kind. */
async function storeRequests(metricsAddress: string): Promise<Record<string, number>> {
  const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
  const counts: Record<string, number> = {};
  for (const m of text.matchAll(/^session_registry_store_requests_total\{kind="(\w+)"\} (\d+)$/gm)) counts[m[1]!] = Number(m[2]);
  return counts;
}

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));

describe("etcd: daemon options", function () {
  this.timeout(30_000);
  const etcd = suiteEtcd();

  it("prints `store: etcd (ENDPOINTS)` in its ready line and exits 0 on SIGTERM", async () => {
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESSION_REGISTRY_")));
    const args = ["--listen", "127.0.0.1:0", "--store", "etcd", "--etcd-endpoints", etcd().endpoint, "--etcd-prefix", uniquePrefix()];
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", "src/daemon/main.ts", ...args], {
      cwd: REPO_ROOT,
      env: { ...env, SESSION_REGISTRY_LOG_LEVEL: "warn", SESSION_REGISTRY_HTTP_LISTEN: "off" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.setEncoding("utf8").on("data", (c: string) => (out += c));
    child.stderr.setEncoding("utf8").on("data", (c: string) => (err += c));
    const closed = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
    try {
      await new Promise<void>((resolve, reject) => {
        const check = () => {
          if (out.includes("\n")) resolve();
        };
        child.stdout.on("data", check);
        void closed.then(() => reject(new Error(`daemon exited before listening; stderr:\n${err}`)));
      });
      expect(out).to.match(
        new RegExp(`^session-registry listening on 127\\.0\\.0\\.1:\\d+ \\(store: etcd \\(${etcd().endpoint.replace(/[.]/g, "\\.")}\\), `),
      );
    } finally {
      child.kill("SIGTERM");
    }
    expect(await closed).to.equal(0);
  });

  it("rejects an unreadable --etcd-ca with a ConfigError before opening anything", async () => {
    const config: DaemonConfig = {
      ...DEFAULT_CONFIG,
      listen: "127.0.0.1:0",
      httpListen: undefined,
      logLevel: "silent",
      store: "etcd",
      etcdEndpoints: ["https://127.0.0.1:2379"],
      etcdCa: "/nonexistent/ca.pem",
    };
    try {
      await startDaemon(config);
      expect.fail("startDaemon should have rejected");
    } catch (e) {
      expect(e).to.be.instanceOf(ConfigError);
      expect((e as Error).message).to.match(/^--etcd-ca: cannot read \/nonexistent\/ca\.pem: ENOENT/);
    }
  });

  it("never logs the etcd password", async () => {
    const lines: string[] = [];
    const log = createLogger({ level: "debug", destination: { write: (line: string) => void lines.push(line) } });
    const config: DaemonConfig = {
      ...DEFAULT_CONFIG,
      listen: "127.0.0.1:0",
      httpListen: undefined,
      store: "etcd",
      // Nothing listens there: the daemon starts NOT_SERVING and logs why.
      etcdEndpoints: ["http://127.0.0.1:1"],
      etcdUser: "registry",
      etcdPassword: "hunter2-very-secret",
    };
    const daemon = await startDaemon(config, { logger: log });
    await daemon.shutdown(0);
    const text = lines.join("");
    expect(text).to.include("daemon started");
    expect(text).to.include("[redacted]");
    expect(text).to.not.include("hunter2-very-secret");
  });

  for (const readCache of [true, false]) {
    it(`counts its etcd requests in /metrics; with --etcd-read-cache ${readCache ? "on, Lookups cost probes" : "off, each Lookup is a read of etcd"}`, async () => {
      const d = await startTestDaemon({
        config: {
          store: "etcd",
          etcdEndpoints: [etcd().endpoint],
          etcdPrefix: uniquePrefix(),
          etcdReadCache: readCache,
          metricsListen: "127.0.0.1:0",
        },
      });
      try {
        const metrics = d.daemon.metricsAddress!;
        const client = d.client();
        const table = uniqueName("req");
        await client.createTable({ table });
        const { id } = await client.register({ projectPath: "/req/one" }, { table });
        const before = await storeRequests(metrics);
        expect(Object.keys(before).sort()).to.deep.equal(
          ["fences", "lease_grants", "lease_keep_alives", "lease_revokes", "probes", "reads", "txns"].sort(),
        );
        expect(before.txns).to.be.at.least(2);
        // The first read starts loading the copy, and goes to etcd meanwhile: read until one is served from the copy (a probe).
        for (let tries = 0; tries < 100; tries++) {
          await client.lookup({ id }, { table });
          if (!readCache || (await storeRequests(metrics)).probes! > 0) break;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        // A scrape reads the tables itself (the table gauges): what one costs is taken off.
        const idle = await storeRequests(metrics);
        const start = await storeRequests(metrics);
        for (let i = 0; i < 10; i++) await client.lookup({ id }, { table });
        const after = await storeRequests(metrics);
        const byLookups = (kind: string) => after[kind]! - start[kind]! - (start[kind]! - idle[kind]!);
        if (readCache) {
          expect(byLookups("reads")).to.equal(0);
          expect(byLookups("probes")).to.equal(10);
        } else {
          expect(byLookups("reads")).to.equal(10);
          expect(after.probes).to.equal(0);
        }
      } finally {
        await d.stop();
      }
    });
  }
});
