/**
 * `npm run bench:profile [-- seconds]`: CPU profiles (node --cpu-prof) of
 * the daemon and of the bare no-op server, one process per workload (Lookup,
 * Register+Remove), under the benchmark's load generator, and of the daemon
 * answering Lookup over its HTTP door (Connect JSON). With `--etcd`
 * instead: the memory-store daemon against the etcd-store daemon (read cache
 * on, as by default; one etcd, tests' helper) under Lookup and under
 * Register, so that what the etcd store adds per call shows by area. Each summary
 * covers the measured window only (not start-up or warm-up) and divides the
 * self time of each area (our src/ folders, grpc-js, node's http2, GC...) by
 * the calls handled in it: µs per call, comparable between the two servers.
 * The .cpuprofile files stay in bench/profiles/ (open them in Chrome
 * DevTools).
 */
import { mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { startDaemonProcess, startNoopProcess, type ServerProcess } from "./daemon-process.js";
import { LoadGenerator } from "./load/generator.js";
import type { Transport, Workload } from "./load/protocol.js";
import { startEtcd } from "../test/helpers/etcd.js";
import { summarize, type Profile } from "./profile-summary.js";
import { prepare, TABLE } from "./unary.js";

const etcdMode = process.argv.includes("--etcd");
const positional = process.argv.slice(2).filter((a) => !a.startsWith("--"));
const seconds = Number(positional[0] ?? 5);
const top = Number(positional[1] ?? 30);
const dir = fileURLToPath(new URL("profiles/", import.meta.url));
rmSync(dir, { recursive: true, force: true });

async function profile(
  generator: LoadGenerator,
  name: string,
  kind: "lookup" | "registerRemove" | "register",
  start: (nodeArgs: string[]) => Promise<ServerProcess>,
  transport: Transport = "grpc",
): Promise<void> {
  const out = `${dir}${name}-${kind}/`;
  mkdirSync(out, { recursive: true });
  const spawnedAt = performance.now();
  const server = await start(["--cpu-prof", "--cpu-prof-dir", out]);
  const warmupMs = 1000;
  const measureMs = seconds * 1000;
  let goAt = NaN;
  let calls: number;
  try {
    const ids = await prepare(server.address, 1000, name !== "noop");
    const workload: Workload =
      kind === "lookup" ? { kind, table: TABLE, ids } : kind === "register" ? { kind, table: TABLE, prefix: "p" } : { kind, table: TABLE };
    const result = await generator.run({
      address: transport === "grpc" ? server.address : server.httpAddress!,
      transport,
      channelsPerWorker: 4,
      concurrency: 64,
      warmupMs,
      measureMs,
      workload,
      onGo: () => (goAt = performance.now()),
    });
    calls = Math.round(result.rps * seconds);
  } finally {
    await server.stop();
  }
  const file = readdirSync(out).find((f) => f.endsWith(".cpuprofile"))!;
  const fromMs = goAt - spawnedAt + warmupMs;
  console.log(`\n=== ${name} ${kind}: ${Math.round(calls / seconds)}/s (${out}${file}) ===`);
  const data = JSON.parse(readFileSync(out + file, "utf8")) as Profile;
  console.log(summarize(data, { top, fromMs, toMs: fromMs + measureMs, calls }));
}

const generator = new LoadGenerator(1);
try {
  if (etcdMode) {
    const etcd = await startEtcd();
    try {
      let prefixes = 0;
      const etcdFlags = () => ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", `/profile-${prefixes++}/`];
      for (const kind of ["lookup", "register"] as const) {
        await profile(generator, "memory", kind, (nodeArgs) => startDaemonProcess([], nodeArgs));
        await profile(generator, "etcd", kind, (nodeArgs) => startDaemonProcess(etcdFlags(), nodeArgs));
      }
    } finally {
      await etcd.stop();
    }
  } else {
    for (const kind of ["lookup", "registerRemove"] as const) {
      await profile(generator, "noop", kind, startNoopProcess);
      await profile(generator, "daemon", kind, (nodeArgs) => startDaemonProcess([], nodeArgs));
    }
    await profile(
      generator,
      "daemon-connect-json",
      "lookup",
      (nodeArgs) => startDaemonProcess([], nodeArgs, { http: true }),
      "connect-json",
    );
  }
} finally {
  await generator.close();
}
