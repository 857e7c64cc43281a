/**
 * `npm run bench:alloc [-- --calls N]`: what each call allocates in the
 * server, the daemon against the bare grpc-js no-op server, counted rather
 * than timed, so that a busy machine moves it little. Each server runs in
 * its own process with ./alloc-agent.ts loaded; this process sends exactly
 * N Lookups, then N Register+Remove pairs, 64 in flight over 4 HTTP/2
 * connections, each workload after a warm-up of as many calls, and reads
 * the agent's windows:
 *
 * - bytes allocated per call (the used heap's growth between collections,
 *   plus what each collection freed), garbage collections per 1,000 calls
 *   and their cost in µs per call, and the process's CPU per call;
 * - from a second window with V8's sampling heap profiler (collected
 *   objects included), those bytes by where they were allocated: our
 *   folders, protobuf, grpc-js, node's HTTP/2, and by function.
 *
 * Writes bench/alloc-results.json (or --out FILE) and prints a summary.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

import type { WindowFile } from "./alloc-agent.js";
import { startDaemonProcess, startNoopProcess, type ServerProcess, type StartOptions } from "./daemon-process.js";
import { H2GrpcChannel } from "./load/h2-client.js";
import { makeOp } from "./load/ops.js";
import type { Workload } from "./load/protocol.js";
import { area } from "./profile-summary.js";
import { round } from "./stats.js";
import { prepare, TABLE } from "./unary.js";

const { values } = parseArgs({
  options: {
    calls: { type: "string", default: "20000" },
    out: { type: "string", default: fileURLToPath(new URL("alloc-results.json", import.meta.url)) },
    top: { type: "string", default: "15" },
  },
});
const CALLS = Number(values.calls);
const TOP = Number(values.top);
const CONCURRENCY = 64;
const CHANNELS = 4;
const AGENT = "./bench/alloc-agent.ts";

interface HeapNode {
  callFrame: { functionName: string; url: string; lineNumber: number };
  selfSize: number;
  children: HeapNode[];
}

/** The coarse areas the figures are told by, from where an object was allocated (the innermost JS frame). */
function category(url: string, fn: string): string {
  if (fn === "toTimestamp" || url.includes("google/protobuf/timestamp")) return "Timestamps (encode)";
  if (url.includes("/src/transport/convert.ts")) return "answer messages, BigInts (convert.ts)";
  if (url.includes("/src/gen/") || url.includes("@bufbuild/protobuf")) return "protobuf decode and encode";
  if (url.includes("/src/transport/")) return "transport: handler, promise chain, call guard";
  if (url.includes("/src/core/") || url.includes("/src/store/")) return "registry and store";
  if (url.includes("/bench/")) return "bench: the no-op server's handlers, the probe";
  return area(url, fn);
}

/** A sampled profile's bytes by category and by function. */
function breakdown(head: HeapNode): { byCategory: Map<string, number>; byFunction: Map<string, number>; total: number } {
  const byCategory = new Map<string, number>();
  const byFunction = new Map<string, number>();
  let total = 0;
  const walk = (node: HeapNode) => {
    if (node.selfSize > 0) {
      const { functionName, url, lineNumber } = node.callFrame;
      const fn = `${functionName || "(anonymous)"}  ${url.replace(/^.*node_modules\//, "").replace(/^file:\/\/.*?\/(src|bench)\//, "$1/")}:${lineNumber + 1}`;
      const cat = category(url, functionName);
      byCategory.set(cat, (byCategory.get(cat) ?? 0) + node.selfSize);
      byFunction.set(fn, (byFunction.get(fn) ?? 0) + node.selfSize);
      total += node.selfSize;
    }
    node.children.forEach(walk);
  };
  walk(head);
  return { byCategory, byFunction, total };
}

/** Runs `count` calls of `op`, `CONCURRENCY` in flight; `from` numbers them on from earlier runs. */
async function drive(op: (n: number) => Promise<void>, from: number, count: number): Promise<void> {
  let next = 0;
  const loop = async () => {
    while (next < count) await op(from + next++);
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, loop));
}

/** Waits for a line the agent prints on the server's stdout. */
function lineFrom(server: ServerProcess, line: string): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = "";
    const onData = (chunk: Buffer) => {
      seen += chunk.toString();
      if (!seen.includes(line)) return;
      server.child.stdout!.off("data", onData);
      server.child.off("exit", onExit);
      resolve();
    };
    const onExit = () => reject(new Error(`the server exited before printing "${line}"`));
    server.child.stdout!.on("data", onData);
    server.child.once("exit", onExit);
  });
}

export interface WorkloadFigures {
  /** Calls measured (pairs for Register+Remove). */
  calls: number;
  bytes_per_call: number;
  scavenges_per_1k_calls: number;
  mark_compacts_per_1k_calls: number;
  gc_us_per_call: number;
  cpu_us_per_call: number;
  /** The sampled window's bytes per call by area, largest first. */
  by_area: Record<string, number>;
  top_functions: Record<string, number>;
}

async function measureServer(name: string, start: (opts: StartOptions) => Promise<ServerProcess>, fill: boolean) {
  const dir = mkdtempSync(join(tmpdir(), `alloc-${name}-`));
  // The child inherits the environment: the agent finds its directory there.
  process.env.ALLOC_PROBE_OUT = dir;
  const server = await start({ imports: [AGENT] });
  const channels = Array.from({ length: CHANNELS }, () => new H2GrpcChannel(server.address));
  const figures: Record<string, WorkloadFigures> = {};
  try {
    const ids = await prepare(server.address, 1000, fill);
    await Promise.all(channels.map((c) => c.connected()));
    let window = 0;
    const workloads: [string, Workload][] = [
      ["lookup", { kind: "lookup", table: TABLE, ids }],
      ["register_remove", { kind: "registerRemove", table: TABLE }],
    ];
    for (const [key, workload] of workloads) {
      const op = makeOp({ worker: 0, run: window, transport: "grpc", workload }, channels);
      let sent = 0;
      await drive(op, sent, CALLS);
      sent += CALLS;
      const files: WindowFile[] = [];
      for (let w = 0; w < 2; w++, window++) {
        const opened = lineFrom(server, `alloc-probe: window ${window} open`);
        server.child.kill("SIGUSR2");
        await opened;
        await drive(op, sent, CALLS);
        sent += CALLS;
        const written = lineFrom(server, `alloc-probe: window ${window} written`);
        server.child.kill("SIGUSR2");
        await written;
        files.push(JSON.parse(readFileSync(join(dir, `window-${window}.json`), "utf8")) as WindowFile);
      }
      const [plain, sampled] = files as [WindowFile, WindowFile];
      const count = (type: string) => plain.gcs.filter((g) => g.type === type).length;
      const { byCategory, byFunction, total } = breakdown((sampled.sampled as { head: HeapNode }).head);
      // The sampled bytes, scaled to the plain window's count: the profiler estimates, the heap's growth counts.
      const scale = plain.allocatedBytes / total;
      const perCall = (m: Map<string, number>, n: number) =>
        Object.fromEntries(
          [...m]
            .sort((a, b) => b[1] - a[1])
            .slice(0, n)
            .map(([k, bytes]) => [k, Math.round((bytes * scale) / CALLS)]),
        );
      figures[key] = {
        calls: CALLS,
        bytes_per_call: Math.round(plain.allocatedBytes / CALLS),
        scavenges_per_1k_calls: round((1000 * count("Scavenge")) / CALLS, 2),
        mark_compacts_per_1k_calls: round((1000 * (count("MarkSweepCompact") + count("MarkCompact"))) / CALLS, 3),
        gc_us_per_call: round(plain.gcs.reduce((a, g) => a + g.costUs, 0) / CALLS, 2),
        cpu_us_per_call: round(plain.cpuUs / CALLS, 1),
        by_area: perCall(byCategory, 100),
        top_functions: perCall(byFunction, TOP),
      };
    }
  } finally {
    for (const c of channels) c.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return figures;
}

const noop = await measureServer("noop", (opts) => startNoopProcess([], opts), false);
const daemon = await measureServer("daemon", (opts) => startDaemonProcess([], [], opts), true);
const ratio = (key: "lookup" | "register_remove", f: keyof WorkloadFigures) =>
  round((daemon[key]![f] as number) / (noop[key]![f] as number), 2);
const results = {
  date: new Date().toISOString(),
  node: process.version,
  calls: CALLS,
  noop,
  daemon,
  lookup_bytes_ratio: ratio("lookup", "bytes_per_call"),
  lookup_gc_us_ratio: ratio("lookup", "gc_us_per_call"),
  register_remove_bytes_ratio: ratio("register_remove", "bytes_per_call"),
  register_remove_gc_us_ratio: ratio("register_remove", "gc_us_per_call"),
};
writeFileSync(values.out, JSON.stringify(results, null, 2) + "\n");

for (const key of ["lookup", "register_remove"] as const) {
  console.log(`\n=== ${key} (${CALLS} ${key === "lookup" ? "calls" : "pairs"} measured) ===`);
  console.log("figure".padEnd(28) + "noop".padStart(10) + "daemon".padStart(10));
  for (const f of [
    "bytes_per_call",
    "scavenges_per_1k_calls",
    "mark_compacts_per_1k_calls",
    "gc_us_per_call",
    "cpu_us_per_call",
  ] as const) {
    console.log(f.padEnd(28) + String(noop[key]![f]).padStart(10) + String(daemon[key]![f]).padStart(10));
  }
  for (const [server, figures] of [
    ["noop", noop],
    ["daemon", daemon],
  ] as const) {
    console.log(`\n${server}: bytes per call by area`);
    for (const [k, v] of Object.entries(figures[key]!.by_area)) console.log(`${String(v).padStart(8)}  ${k}`);
    console.log(`${server}: bytes per call by function`);
    for (const [k, v] of Object.entries(figures[key]!.top_functions)) console.log(`${String(v).padStart(8)}  ${k}`);
  }
}
console.log(`\nwritten to ${values.out}`);
