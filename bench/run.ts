/**
 * `npm run bench [-- --quick]`: runs the benchmarks, prints a table and
 * writes bench/results.json (one key per figure). Not part of `npm test`:
 * figures depend on the machine and its load.
 */
import { writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { fileURLToPath } from "node:url";

import { etcdBench } from "./etcd.js";
import { watchFanout } from "./watch-fanout.js";

const quick = process.argv.includes("--quick");
const results: Record<string, number | string> = {
  date: new Date().toISOString(),
  node: process.version,
  cpus: `${cpus().length} x ${cpus()[0]?.model ?? "unknown"}`,
  mode: quick ? "quick" : "full",
};

const fanout = await watchFanout({ watchers: 1000, channels: 10, registers: quick ? 20 : 200 });
results.watch_fanout_watchers = fanout.watchers;
results.watch_fanout_p50_ms = fanout.all_p50_ms;
results.watch_fanout_p99_ms = fanout.all_p99_ms;
results.watch_delivery_p50_ms = fanout.each_p50_ms;
results.watch_delivery_p99_ms = fanout.each_p99_ms;

const etcd = await etcdBench({
  warmupMs: quick ? 1_000 : 5_000,
  measureMs: quick ? 2_000 : 10_000,
  concurrency: 64,
  channels: 4,
  lookupSessions: 1_000,
});
Object.assign(results, etcd);

const out = fileURLToPath(new URL("results.json", import.meta.url));
writeFileSync(out, JSON.stringify(results, null, 2) + "\n");
const width = Math.max(...Object.keys(results).map((k) => k.length));
for (const [k, v] of Object.entries(results)) console.log(`${k.padEnd(width)}  ${v}`);
console.log(`\nwritten to ${out}`);
