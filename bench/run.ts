/**
 * `npm run bench [-- --quick | --smoke] [-- --out-dir DIR]`: runs the
 * benchmarks, prints a table and writes DIR/results.json (one key per
 * figure) and DIR/chart.svg (default DIR: bench/). Not part of `npm test`:
 * figures depend on the machine and its load.
 *
 * --quick: the same figures with shorter windows (under a minute).
 * --smoke: every figure from windows of a fraction of a second and small
 *   tables, only to check that the harness works (the test suite runs it);
 *   its figures mean nothing.
 * --only etcd|unary|scale: just that section (etcd store vs raw etcd; the
 *   daemon vs the bare server; Lookup at 1 M vs 10 sessions); the targets
 *   of the sections left out are not judged.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { renderChart } from "./chart.js";
import { connectBench } from "./connect.js";
import { etcdBench } from "./etcd.js";
import { runInProcess } from "./inprocess-runner.js";
import { LoadGenerator } from "./load/generator.js";
import { lookupScaleBench } from "./lookup-scale.js";
import { unaryBench, type UnaryBenchOptions } from "./unary.js";
import { watchFanout, type FanoutOptions } from "./watch-fanout.js";

type Mode = "full" | "quick" | "smoke";

const args = process.argv.slice(2);
const mode: Mode = args.includes("--smoke") ? "smoke" : args.includes("--quick") ? "quick" : "full";
const outAt = args.indexOf("--out-dir");
const onlyAt = args.indexOf("--only");
const only = onlyAt >= 0 ? args[onlyAt + 1] : undefined;
if (only !== undefined && !["etcd", "unary", "scale"].includes(only)) throw new Error(`--only takes etcd, unary or scale, not ${only}`);
const runs = (name: string) => only === undefined || only === name;
const outDir = outAt >= 0 && args[outAt + 1] !== undefined ? resolve(args[outAt + 1]!) : fileURLToPath(new URL(".", import.meta.url));

interface Plan {
  unary: UnaryBenchOptions;
  inProcess: { maxSize: number; lookups: number };
  /** Sessions in the large table of the RPC-level Lookup figure. */
  scaleSessions: number;
  fanout: FanoutOptions;
  etcd: { warmupMs: number; measureMs: number; concurrency: number; channels: number; lookupSessions: number };
}

/**
 * One load-generator thread: with the daemon on the other core, a second
 * thread would only take CPU from the server under test (see BENCHMARKS.md).
 */
const WORKERS = 1;
const common = { channelsPerWorker: 4, concurrency: 64, lookupSessions: 1000 };
const PLANS: Record<Mode, Plan> = {
  full: {
    unary: { ...common, warmupMs: 2000, measureMs: 6000, rounds: 3, sweep: [1, 4, 16, 64, 256], sweepWarmupMs: 500, sweepMeasureMs: 2000 },
    inProcess: { maxSize: 1_000_000, lookups: 1_000_000 },
    scaleSessions: 1_000_000,
    fanout: { watchers: 1000, channels: 10, registers: 200 },
    etcd: { warmupMs: 3000, measureMs: 8000, concurrency: 64, channels: 4, lookupSessions: 1000 },
  },
  quick: {
    unary: { ...common, warmupMs: 300, measureMs: 1500, rounds: 3, sweep: [1, 16, 64], sweepWarmupMs: 200, sweepMeasureMs: 600 },
    inProcess: { maxSize: 1_000_000, lookups: 100_000 },
    scaleSessions: 1_000_000,
    fanout: { watchers: 1000, channels: 10, registers: 30 },
    etcd: { warmupMs: 500, measureMs: 1200, concurrency: 64, channels: 4, lookupSessions: 200 },
  },
  smoke: {
    unary: {
      ...common,
      lookupSessions: 20,
      // One round of 400 ms: windows of 100 ms saw no call at all on a machine loaded ~7 on 2 cores.
      warmupMs: 100,
      measureMs: 400,
      rounds: 1,
      sweep: [1, 8],
      sweepWarmupMs: 50,
      sweepMeasureMs: 100,
    },
    inProcess: { maxSize: 10_000, lookups: 10_000 },
    // Filling a million takes the daemon ~10 s: a smoke run's large table is smaller (lookup_1m_table_size says so).
    scaleSessions: 10_000,
    fanout: { watchers: 20, channels: 2, registers: 3 },
    etcd: { warmupMs: 50, measureMs: 200, concurrency: 8, channels: 2, lookupSessions: 20 },
  },
};

/** The issue's targets: figure, comparison, bound (a number, or a factor of another figure). */
const TARGETS: { key: string; op: ">=" | "<="; bound: number; of?: string }[] = [
  { key: "lookup_ratio", op: ">=", bound: 0.9 },
  { key: "register_remove_ratio", op: ">=", bound: 0.8 },
  { key: "p99_ms", op: "<=", bound: 2 },
  { key: "p99_vs_noop", op: "<=", bound: 1.2 },
  { key: "register_remove_cpu_ratio", op: ">=", bound: 0.9 },
  { key: "lookup_1m_ratio", op: ">=", bound: 0.95 },
  { key: "bytes_per_session", op: "<=", bound: 1024 },
  { key: "watch_fanout_p99_ms", op: "<=", bound: 50 },
  { key: "memory_vs_etcd_register", op: ">=", bound: 10 },
  { key: "etcd_register_ratio", op: ">=", bound: 0.8 },
  { key: "etcd_cached_lookup_ratio", op: ">=", bound: 0.8 },
  { key: "etcd_cached_list_ratio", op: ">=", bound: 0.8 },
  { key: "etcd_cached_get_table_ratio", op: ">=", bound: 0.8 },
  { key: "etcd_cached_list_tables_ratio", op: ">=", bound: 0.8 },
];

const plan = PLANS[mode];
const results: Record<string, unknown> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} x ${cpus()[0]?.model ?? "unknown"}`,
  mode,
};
const started = performance.now();
const section = (name: string) => console.error(`[${((performance.now() - started) / 1000).toFixed(0)} s] ${name}…`);

const load = new LoadGenerator(WORKERS);
try {
  if (runs("unary")) {
    section("Lookup and Register+Remove: daemon vs bare grpc-js no-op server");
    Object.assign(results, await unaryBench(plan.unary, load));
  }

  if (runs("scale")) {
    section(`Lookup over gRPC in a table of ${plan.scaleSessions.toLocaleString("en")} sessions vs one of 10, one daemon`);
    Object.assign(results, await lookupScaleBench(plan.unary, load, plan.scaleSessions));
  }

  if (only === undefined) {
    section("Lookup over Connect JSON vs gRPC, one daemon");
    Object.assign(results, await connectBench(plan.unary, load));

    section("in-process store: lookup cost by table size, a deep List page, heap per session");
    Object.assign(results, await runInProcess(plan.inProcess));

    section("watch fan-out");
    const fanout = await watchFanout(plan.fanout);
    results.watch_fanout_watchers = fanout.watchers;
    results.watch_fanout_p50_ms = fanout.all_p50_ms;
    results.watch_fanout_p99_ms = fanout.all_p99_ms;
    results.watch_delivery_p50_ms = fanout.each_p50_ms;
    results.watch_delivery_p99_ms = fanout.each_p99_ms;
    results.watch_fanout_daemon_cpu_ms_per_event = fanout.daemon_cpu_ms_per_event;
    results.watch_fanout_client_cpu_ms_per_event = fanout.client_cpu_ms_per_event;
  }

  if (runs("etcd")) {
    section("etcd store vs raw etcd, memory vs etcd Register");
    Object.assign(results, await etcdBench(plan.etcd, load));
  }
} finally {
  await load.close();
}

results.targets = Object.fromEntries(
  TARGETS.filter((t) => results[t.key] !== undefined && (t.of === undefined || results[t.of] !== undefined)).map((t) => {
    const value = results[t.key] as number;
    const bound = t.of === undefined ? t.bound : t.bound * (results[t.of] as number);
    const met = t.op === ">=" ? value >= bound : value <= bound;
    return [t.key, { value, target: `${t.op} ${t.of === undefined ? t.bound : `${t.bound} x ${t.of}`}`, met }];
  }),
);
results.duration_s = Math.round((performance.now() - started) / 1000);

mkdirSync(outDir, { recursive: true });
const out = resolve(outDir, "results.json");
writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
const chart = resolve(outDir, "chart.svg");
writeFileSync(chart, renderChart(results));

const flat = Object.entries(results).filter(([, v]) => typeof v !== "object");
const width = Math.max(...flat.map(([k]) => k.length));
for (const [k, v] of flat) console.log(`${k.padEnd(width)}  ${String(v)}`);
console.log("\ntargets:");
for (const [k, t] of Object.entries(results.targets as Record<string, { value: number; target: string; met: boolean }>)) {
  console.log(`  ${t.met ? "met    " : "MISSED "} ${k.padEnd(width)}  ${t.value}  (${t.target})`);
}
console.log(`\nwritten to ${out} and ${chart}`);
