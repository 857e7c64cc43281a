/**
 * The benchmark harness itself, not the figures: `bench/run.ts --smoke`
 * starts the daemon, the bare no-op server, etcd and the load generator for
 * windows of a fraction of a second, and must write a results.json with
 * every figure BENCHMARKS.md reports, and a chart. No assertion here
 * is about how fast anything is.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

/** Every key of results.json that BENCHMARKS.md reports, each a finite number. */
const FIGURES = [
  "noop_rps",
  "lookup_rps",
  "lookup_ratio",
  "register_remove_rps",
  "register_remove_ratio",
  "grpc_lookup_rps",
  "connect_json_lookup_rps",
  "connect_lookup_ratio",
  "p50_ms",
  "p99_ms",
  "lookup_rps_at_1m",
  "lookup_rps_at_10",
  "lookup_1m_ratio",
  "lookup_1m_table_size",
  "lookup_us_at_10",
  "lookup_us_at_1m",
  "list_page_us_at_1m",
  "bytes_per_session",
  "watch_fanout_p50_ms",
  "watch_fanout_p99_ms",
  "etcd_register_rps",
  "etcd_raw_txn_rps",
  "etcd_register_ratio",
  "memory_register_rps",
  "memory_vs_etcd_register",
  "memory_lookup_rps",
  "etcd_lookup_rps",
  "etcd_uncached_lookup_rps",
  "etcd_cached_lookup_ratio",
  "etcd_lookup_rps_1_daemon",
  "etcd_lookup_rps_2_daemons",
  "etcd_lookup_rps_3_daemons",
];

describe("bench harness (--smoke)", function () {
  this.timeout(180_000);
  let dir: string;
  let results: Record<string, unknown>;
  let chart: string;
  let stdout = "";

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "bench-smoke-"));
    const child = spawn(process.execPath, ["--conditions=source", "--import", "tsx", "bench/run.ts", "--smoke", "--out-dir", dir], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    const [code] = (await once(child, "exit")) as [number | null];
    expect(code, `bench/run.ts --smoke failed:\n${stderr}`).to.equal(0);
    results = JSON.parse(await readFile(join(dir, "results.json"), "utf8")) as Record<string, unknown>;
    chart = await readFile(join(dir, "chart.svg"), "utf8");
  });

  after(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  it("writes every figure as a finite number, and says which mode produced it", () => {
    expect(results.mode).to.equal("smoke");
    for (const key of FIGURES) {
      expect(results[key], key).to.be.a("number");
      expect(Number.isFinite(results[key]), `${key} = ${String(results[key])}`).to.equal(true);
    }
    // Throughputs count answered calls: zero would mean nothing got through.
    for (const key of [
      "noop_rps",
      "lookup_rps",
      "register_remove_rps",
      "grpc_lookup_rps",
      "connect_json_lookup_rps",
      "lookup_rps_at_1m",
      "lookup_rps_at_10",
      "memory_register_rps",
      "etcd_register_rps",
      "etcd_raw_txn_rps",
      "memory_lookup_rps",
      "etcd_lookup_rps",
      "etcd_uncached_lookup_rps",
      "etcd_lookup_rps_3_daemons",
      "etcd_list_rps",
      "etcd_get_table_rps",
      "etcd_list_tables_rps",
    ]) {
      expect(results[key], key).to.be.greaterThan(0);
    }
  });

  it("derives the ratios from the figures they divide", () => {
    const n = (key: string) => results[key] as number;
    // The rates are written rounded to whole calls/s, the ratios from the exact rates: allow for that.
    const near = (ratio: string, num: string, den: string) => {
      const expected = n(num) / n(den);
      expect(n(ratio), ratio).to.be.closeTo(expected, 0.002 + expected * (1 / n(num) + 1 / n(den)));
    };
    near("lookup_ratio", "lookup_rps", "noop_rps");
    near("register_remove_ratio", "register_remove_rps", "noop_pair_rps");
    near("connect_lookup_ratio", "connect_json_lookup_rps", "grpc_lookup_rps");
    near("lookup_1m_ratio", "lookup_rps_at_1m", "lookup_rps_at_10");
    near("etcd_register_ratio", "etcd_register_rps", "etcd_raw_txn_rps");
    near("etcd_cached_lookup_ratio", "etcd_lookup_rps", "memory_lookup_rps");
    near("etcd_cached_list_ratio", "etcd_list_rps", "memory_list_rps");
    near("etcd_cached_get_table_ratio", "etcd_get_table_rps", "memory_get_table_rps");
    near("etcd_cached_list_tables_ratio", "etcd_list_tables_rps", "memory_list_tables_rps");
    expect(n("p99_vs_noop")).to.be.closeTo(n("p99_ms") / n("noop_p99_ms"), 0.01 + (0.001 / n("noop_p99_ms")) * 2);
  });

  it("writes the chart's series: lookup cost by table size, throughput by concurrency for both servers", () => {
    const bySize = results.lookup_us_by_table_size as Record<string, number>;
    expect(Object.keys(bySize).length).to.be.greaterThan(1);
    const byConcurrency = results.rps_by_concurrency as { noop: Record<string, number>; lookup: Record<string, number> };
    expect(Object.keys(byConcurrency.noop)).to.deep.equal(["1", "8"]);
    expect(Object.keys(byConcurrency.lookup)).to.deep.equal(["1", "8"]);
    expect(chart.trimStart().startsWith("<svg")).to.equal(true);
    expect(chart.trimEnd().endsWith("</svg>")).to.equal(true);
  });

  it("checks every target and prints the table", () => {
    const targets = results.targets as Record<string, { value: number; target: string; met: boolean }>;
    expect(Object.keys(targets)).to.include.members([
      "lookup_ratio",
      "register_remove_ratio",
      "p99_ms",
      "p99_vs_noop",
      "register_remove_cpu_ratio",
      "lookup_1m_ratio",
      "bytes_per_session",
      "watch_fanout_p99_ms",
    ]);
    for (const t of Object.values(targets)) expect(t.met).to.be.a("boolean");
    expect(stdout).to.include("lookup_ratio");
    expect(stdout).to.include("targets:");
  });
});
