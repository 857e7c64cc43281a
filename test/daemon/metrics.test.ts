/**
 * The /metrics endpoint of a real daemon (--metrics-listen 127.0.0.1:0):
 * after calls that succeed, are rejected and find nothing, a watch and an
 * expiration, the scrape says so.
 */
import { expect } from "chai";
import * as grpc from "@grpc/grpc-js";
import { SessionLimitReachedError, SessionNotFoundError } from "@session-registry/client";
import { SessionRegistryClient as GeneratedClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { Registry } from "../../src/core/registry.js";
import { silentLogger } from "../../src/daemon/logger.js";
import { createMetrics, startMetricsServer } from "../../src/daemon/metrics.js";
import { packageVersion } from "../../src/version.js";
import { MemoryStore } from "../../src/store/memory/store.js";
import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";

/** The value of one series in Prometheus text, or undefined when absent. Labels in the order prom-client prints them. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  const series = pairs.length > 0 ? `${name}{${pairs.join(",")}}` : name;
  for (const line of text.split("\n")) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function scrape(address: string): Promise<string> {
  const res = await fetch(`http://${address}/metrics`);
  expect(res.status).to.equal(200);
  expect(res.headers.get("content-type")).to.equal("text/plain; version=0.0.4; charset=utf-8");
  return res.text();
}

/** Scrapes until `ready` holds; the daemon's side of a cancel or an expiry lands a moment later. */
async function scrapeUntil(address: string, ready: (text: string) => boolean): Promise<string> {
  for (;;) {
    const text = await scrape(address);
    if (ready(text)) return text;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("metrics", () => {
  let d: TestDaemon;
  let metricsAddress: string;
  let raw: GeneratedClient;

  before(async () => {
    d = await startTestDaemon({ config: { metricsListen: "127.0.0.1:0" } });
    metricsAddress = d.daemon.metricsAddress!;
    raw = new GeneratedClient(d.address, grpc.credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    await d.stop();
  });

  it("counts calls by method and code, rejections by reason, and times unary calls", async () => {
    const client = d.client();
    const table = uniqueName("m");
    await client.createTable({ table, maxSessions: 1 });
    await client.register({ projectPath: "/m/one" }, { table });
    await expectError(client.register({ projectPath: "/m/two" }, { table }), SessionLimitReachedError);
    await expectError(client.lookup({ id: "nobody" }, { table }), SessionNotFoundError);

    const text = await scrape(metricsAddress);
    expect(sample(text, "session_registry_rpcs_total", { method: "CreateTable", code: "OK" })).to.equal(1);
    expect(sample(text, "session_registry_rpcs_total", { method: "Register", code: "OK" })).to.equal(1);
    expect(sample(text, "session_registry_rpcs_total", { method: "Register", code: "RESOURCE_EXHAUSTED" })).to.equal(1);
    expect(sample(text, "session_registry_rpcs_total", { method: "Lookup", code: "NOT_FOUND" })).to.equal(1);
    expect(sample(text, "session_registry_rejections_total", { reason: "SESSION_LIMIT_REACHED" })).to.equal(1);
    expect(sample(text, "session_registry_rejections_total", { reason: "SESSION_NOT_FOUND" })).to.equal(1);
    // Every call is timed once; the +Inf bucket holds them all.
    expect(sample(text, "session_registry_rpc_duration_seconds_count", { method: "Register" })).to.equal(2);
    expect(sample(text, "session_registry_rpc_duration_seconds_bucket", { le: "+Inf", method: "Register" })).to.equal(2);
    expect(sample(text, "session_registry_rpc_duration_seconds_sum", { method: "Register" })).to.be.greaterThan(0);

    expect(sample(text, "session_registry_table_sessions", { table })).to.equal(1);
    expect(sample(text, "session_registry_table_max_sessions", { table })).to.equal(1);
    expect(sample(text, "session_registry_table_max_sessions", { table: "default" })).to.equal(10);
    expect(sample(text, "session_registry_tables")).to.be.at.least(2);
    expect(text).to.match(/^# TYPE session_registry_rpc_duration_seconds histogram$/m);
  });

  it("drops a deleted table's gauges", async () => {
    const client = d.client();
    const table = uniqueName("gone");
    await client.createTable({ table, maxSessions: 2 });
    expect(sample(await scrape(metricsAddress), "session_registry_table_max_sessions", { table })).to.equal(2);
    await client.deleteTable(table);
    const text = await scrape(metricsAddress);
    expect(sample(text, "session_registry_table_max_sessions", { table })).to.equal(undefined);
    expect(sample(text, "session_registry_table_sessions", { table })).to.equal(undefined);
  });

  it("shows open watches, and counts a watch the client cancelled once it ends", async () => {
    const table = uniqueName("w");
    await d.client().createTable({ table });
    const before = sample(await scrape(metricsAddress), "session_registry_rpcs_total", { method: "Watch", code: "CANCELLED" }) ?? 0;

    const stream = raw.watch({ table, startRevision: 0, tableUid: "" });
    stream.on("error", () => {}); // CANCELLED, below
    await new Promise((resolve) => stream.once("data", resolve));
    const open = await scrape(metricsAddress);
    expect(sample(open, "session_registry_active_watchers")).to.equal(1);
    expect(sample(open, "session_registry_max_watchers")).to.equal(10_000);

    stream.cancel();
    const closed = await scrapeUntil(metricsAddress, (t) => sample(t, "session_registry_active_watchers") === 0);
    expect(sample(closed, "session_registry_rpcs_total", { method: "Watch", code: "CANCELLED" })).to.equal(before + 1);
    // A stream's length is not a latency.
    expect(sample(closed, "session_registry_rpc_duration_seconds_count", { method: "Watch" })).to.equal(undefined);
  });

  it("counts a refused watch with its code and reason", async () => {
    const stream = raw.watch({ table: uniqueName("missing"), startRevision: 0, tableUid: "" });
    const err = await new Promise<grpc.ServiceError>((resolve) => stream.on("error", resolve));
    expect(err.code).to.equal(grpc.status.NOT_FOUND);
    const text = await scrape(metricsAddress);
    expect(sample(text, "session_registry_rpcs_total", { method: "Watch", code: "NOT_FOUND" })).to.equal(1);
    expect(sample(text, "session_registry_rejections_total", { reason: "TABLE_NOT_FOUND" })).to.be.at.least(1);
  });

  it("counts an expiration", async () => {
    const client = d.client();
    const table = uniqueName("ttl");
    await client.createTable({ table });
    await client.register({ projectPath: "/m/ttl", ttlMs: 1000 }, { table });
    expect(sample(await scrape(metricsAddress), "session_registry_table_sessions", { table })).to.equal(1);
    const text = await scrapeUntil(metricsAddress, (t) => sample(t, "session_registry_expirations_total") === 1);
    expect(sample(text, "session_registry_table_sessions", { table })).to.equal(0);
  });

  it("says what runs in build_info: the package version, the store kind and the Node.js version, with value 1", async () => {
    const text = await scrape(metricsAddress);
    const lines = text.split("\n").filter((l) => l.startsWith("session_registry_build_info"));
    expect(lines).to.deep.equal([`session_registry_build_info{version="${packageVersion()}",store="memory",node="${process.version}"} 1`]);
    expect(packageVersion()).to.match(/^\d+\.\d+\.\d+/);
    expect(text).to.include("# TYPE session_registry_build_info gauge");
    // The memory store sends no requests anywhere: no store_requests_total series (test/etcd/daemon.test.ts has etcd's).
    expect(text).to.not.include("session_registry_store_requests_total");
  });

  it("serves the process metrics under their usual names", async () => {
    const text = await scrape(metricsAddress);
    expect(sample(text, "process_cpu_user_seconds_total")).to.be.a("number");
    expect(sample(text, "process_resident_memory_bytes")).to.be.greaterThan(0);
    expect(text).to.match(/^nodejs_heap_size_used_bytes \d/m);
    expect(text).to.match(/^nodejs_eventloop_lag_seconds /m);
  });

  it("answers other paths with 404 and other methods with 405", async () => {
    const notFound = await fetch(`http://${metricsAddress}/`);
    expect(notFound.status).to.equal(404);
    await notFound.text();
    const post = await fetch(`http://${metricsAddress}/metrics`, { method: "POST" });
    expect(post.status).to.equal(405);
    expect(post.headers.get("allow")).to.equal("GET, HEAD");
    await post.text();
    const query = await fetch(`http://${metricsAddress}/metrics?x=1`);
    expect(query.status).to.equal(200);
    await query.text();
  });

  describe("startMetricsServer", () => {
    it("says why it cannot listen, and closes with a keep-alive connection open", async () => {
      const registry = new Registry(new MemoryStore({ defaultMaxSessions: 1, maxTables: 1, watchHistory: 1 }));
      const metrics = createMetrics(registry);
      const first = await startMetricsServer("127.0.0.1:0", metrics, silentLogger);
      try {
        const err = await startMetricsServer(first.address, metrics, silentLogger).then(
          () => expect.fail("two servers on one port"),
          (e: unknown) => e as Error,
        );
        expect(err.message).to.equal(
          `port ${first.address} is in use (another process listens on it); stop that process or choose another --metrics-listen`,
        );
        // fetch keeps its connection open for the next request; close() must not wait for it.
        const res = await fetch(`http://${first.address}/metrics`);
        expect(sample(await res.text(), "session_registry_tables")).to.equal(0);
      } finally {
        await first.close();
        await first.close(); // idempotent
        await registry.store.close();
      }
    });
  });
});
