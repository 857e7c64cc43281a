/**
 * The daemon against the physical limit of its stack: Lookup and
 * Register+Remove through a memory-store daemon started with the users'
 * command (see ./daemon-process.ts for its flags), and the same calls, same bytes, same load generator, against the bare
 * grpc-js no-op server (./noop-server.ts), in the same run.
 *
 * - Throughput: closed loop, `concurrency` calls in flight over several
 *   HTTP/2 connections from the load generator's thread, after a warm-up,
 *   the two servers in alternating rounds. Each server's CPU time in
 *   the measured window, divided by the calls, gives its CPU cost per call:
 *   on a 2-core machine shared with the generator, that is the figure that
 *   says what the daemon adds to gRPC, whatever saturates first.
 * - Latency: open loop at half of the daemon's measured peak Lookup rate.
 * - A sweep of concurrency for both servers (the chart's right panel).
 */
import { performance } from "node:perf_hooks";
import { credentials } from "@grpc/grpc-js";
import { SessionRegistryClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { call, sessionMessage } from "./calls.js";
import { startDaemonProcess, startNoopProcess, type ServerProcess } from "./daemon-process.js";
import { LoadGenerator, type LoadResult } from "./load/generator.js";
import type { Transport, Workload } from "./load/protocol.js";
import { percentile, round } from "./stats.js";

export interface UnaryBenchOptions {
  warmupMs: number;
  /** The measured window of each peak figure, split over `rounds` alternating rounds per server. */
  measureMs: number;
  rounds: number;
  /** HTTP/2 connections per load-generator thread. */
  channelsPerWorker: number;
  /** Calls in flight for the peak-throughput figures. */
  concurrency: number;
  /** Concurrencies of the sweep, and each point's warm-up and window. */
  sweep: number[];
  sweepWarmupMs: number;
  sweepMeasureMs: number;
  /** Sessions in the Lookup table. */
  lookupSessions: number;
}

export interface UnaryBenchResult {
  noop_rps: number;
  lookup_rps: number;
  lookup_ratio: number;
  noop_pair_rps: number;
  register_remove_rps: number;
  register_remove_ratio: number;
  /** Registers/s (no Remove) the bare server answers: the ceiling for memory_register_rps. */
  noop_register_rps: number;
  /** Lookups per second of the open loop the latencies come from (about half of lookup_rps). */
  half_load_rps: number;
  /** Calls of that open loop not sent because 1,024 were already in flight (not in the latencies); 0 unless overloaded. */
  half_load_dropped: number;
  p50_ms: number;
  p99_ms: number;
  noop_p50_ms: number;
  noop_p99_ms: number;
  /** p99_ms / noop_p99_ms: the daemon's tail against the bare server's at the same rate. */
  p99_vs_noop: number;
  /** Server CPU per call (pair), µs: what each server spends, independent of who saturates. */
  noop_cpu_us_per_call: number;
  lookup_cpu_us_per_call: number;
  noop_cpu_us_per_pair: number;
  register_remove_cpu_us_per_pair: number;
  /** noop CPU per call / daemon CPU per call: the throughput ratio if the servers, not the generator, saturated. */
  lookup_cpu_ratio: number;
  register_remove_cpu_ratio: number;
  rps_by_concurrency: { noop: Record<string, number>; lookup: Record<string, number> };
}

export const TABLE = "bench";

/**
 * Creates the bench table (a raised limit) and fills it with `n` sessions;
 * returns their ids. The no-op server has no table to fill (`fill` false):
 * it gets the same requests all the same.
 */
export async function prepare(address: string, n: number, fill = true): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `lookup-${i}`);
  if (!fill) return ids;
  const client = new SessionRegistryClient(address, credentials.createInsecure());
  try {
    await call((cb) => client.createTable({ table: TABLE, maxSessions: 1_000_000 }, cb));
    for (let i = 0; i < n; i += 100) {
      await Promise.all(
        ids.slice(i, i + 100).map((id) =>
          call((cb) =>
            client.register(
              {
                table: TABLE,
                requestId: "",
                session: sessionMessage({ id, projectPath: `/bench/lookup/${id}`, metadata: new Map([["editor", "bench"]]) }),
              },
              cb,
            ),
          ),
        ),
      );
    }
    return ids;
  } finally {
    client.close();
  }
}

/** What a load runs against: a server's address over one transport (default gRPC), and the CPU of the process serving it. */
export type Target = Pick<ServerProcess, "address" | "cpuMs"> & { transport?: Transport };

/** Runs a load and measures the server's CPU over the measured window only. */
async function measure(
  load: LoadGenerator,
  server: Target,
  opts: UnaryBenchOptions,
  workload: Workload,
  extra: { concurrency?: number; rate?: number; warmupMs?: number; measureMs?: number } = {},
): Promise<Measured> {
  const warmupMs = extra.warmupMs ?? opts.warmupMs;
  const measureMs = extra.measureMs ?? opts.measureMs;
  let cpuFrom = NaN;
  let sample: NodeJS.Timeout | undefined;
  let started = NaN;
  const result = await load.run({
    onGo: () => {
      started = performance.now();
      sample = setTimeout(() => (cpuFrom = server.cpuMs()), warmupMs);
    },
    address: server.address,
    ...(server.transport !== undefined ? { transport: server.transport } : {}),
    channelsPerWorker: opts.channelsPerWorker,
    concurrency: extra.concurrency ?? opts.concurrency,
    workload,
    warmupMs,
    measureMs,
    ...(extra.rate !== undefined ? { rate: extra.rate } : {}),
  });
  clearTimeout(sample);
  const cpu = server.cpuMs() - cpuFrom;
  // The window closes when the workers stop counting; the few calls still draining add little CPU.
  const windowMs = Math.min(measureMs, performance.now() - started - warmupMs);
  const calls = result.rps * (windowMs / 1000);
  return { ...result, cpuMs: cpu, calls, cpuUsPerCall: calls > 0 ? (cpu * 1000) / calls : NaN };
}

export interface Measured extends LoadResult {
  /** Server CPU over the window, and the calls answered in it. */
  cpuMs: number;
  calls: number;
  cpuUsPerCall: number;
}

/**
 * Measures `workload` on both targets in `opts.rounds` alternating rounds
 * (first, second, first, second…; e.g. bare server, daemon) of
 * `measureMs / rounds` each, and adds the rounds up: a slow spell of the
 * shared machine then falls on both alike, instead of on whichever was
 * measured in it. `secondWorkload`: the second target's, when it differs
 * (e.g. the same daemon, another table).
 */
export async function compare(
  load: LoadGenerator,
  first: Target,
  second: Target,
  opts: UnaryBenchOptions,
  workload: Workload,
  secondWorkload: Workload = workload,
): Promise<[Measured, Measured]> {
  const rounds = Math.max(1, opts.rounds);
  const parts: [Measured[], Measured[]] = [[], []];
  for (let r = 0; r < rounds; r++) {
    // Every round opens new connections: later rounds warm them up briefly too.
    const window = { warmupMs: r === 0 ? opts.warmupMs : Math.min(opts.warmupMs, 500), measureMs: opts.measureMs / rounds };
    parts[0].push(await measure(load, first, opts, workload, window));
    parts[1].push(await measure(load, second, opts, secondWorkload, window));
  }
  const sum = (ms: Measured[]): Measured => {
    const cpuMs = ms.reduce((a, m) => a + m.cpuMs, 0);
    const calls = ms.reduce((a, m) => a + m.calls, 0);
    return {
      rps: ms.reduce((a, m) => a + m.rps, 0) / ms.length,
      latenciesMs: [],
      dropped: 0,
      cpuMs,
      calls,
      cpuUsPerCall: calls > 0 ? (cpuMs * 1000) / calls : NaN,
    };
  };
  return [sum(parts[0]), sum(parts[1])];
}

export async function unaryBench(opts: UnaryBenchOptions, load: LoadGenerator): Promise<UnaryBenchResult> {
  const servers: ServerProcess[] = [];
  try {
    const noop = await startNoopProcess();
    servers.push(noop);
    const daemon = await startDaemonProcess([]);
    servers.push(daemon);
    const ids = await prepare(daemon.address, opts.lookupSessions);
    const lookup: Workload = { kind: "lookup", table: TABLE, ids };
    const pairs: Workload = { kind: "registerRemove", table: TABLE };

    const [noopLookup, daemonLookup] = await compare(load, noop, daemon, opts, lookup);
    const [noopPairs, daemonPairs] = await compare(load, noop, daemon, opts, pairs);
    // The ceiling for Register alone (the memory vs etcd comparison runs Register only).
    const noopRegister = await measure(load, noop, opts, { kind: "register", table: TABLE, prefix: "noop" });

    // Open loop at half the daemon's peak; the cap on calls in flight is far above what that rate needs.
    const rate = Math.round(daemonLookup.rps / 2);
    const open = { rate, concurrency: 1024 };
    const daemonLatency = await measure(load, daemon, opts, lookup, open);
    const noopLatency = await measure(load, noop, opts, lookup, open);

    const sweep = { noop: {} as Record<string, number>, lookup: {} as Record<string, number> };
    for (const c of opts.sweep) {
      const point = { concurrency: c, warmupMs: opts.sweepWarmupMs, measureMs: opts.sweepMeasureMs };
      sweep.noop[c] = Math.round((await measure(load, noop, opts, lookup, point)).rps);
      sweep.lookup[c] = Math.round((await measure(load, daemon, opts, lookup, point)).rps);
    }

    return {
      noop_rps: Math.round(noopLookup.rps),
      lookup_rps: Math.round(daemonLookup.rps),
      lookup_ratio: round(daemonLookup.rps / noopLookup.rps, 3),
      noop_pair_rps: Math.round(noopPairs.rps),
      register_remove_rps: Math.round(daemonPairs.rps),
      register_remove_ratio: round(daemonPairs.rps / noopPairs.rps, 3),
      noop_register_rps: Math.round(noopRegister.rps),
      half_load_rps: Math.round(daemonLatency.rps),
      half_load_dropped: daemonLatency.dropped,
      p50_ms: round(percentile(daemonLatency.latenciesMs, 50), 3),
      p99_ms: round(percentile(daemonLatency.latenciesMs, 99), 3),
      noop_p50_ms: round(percentile(noopLatency.latenciesMs, 50), 3),
      noop_p99_ms: round(percentile(noopLatency.latenciesMs, 99), 3),
      p99_vs_noop: round(percentile(daemonLatency.latenciesMs, 99) / percentile(noopLatency.latenciesMs, 99), 3),
      noop_cpu_us_per_call: round(noopLookup.cpuUsPerCall, 1),
      lookup_cpu_us_per_call: round(daemonLookup.cpuUsPerCall, 1),
      noop_cpu_us_per_pair: round(noopPairs.cpuUsPerCall, 1),
      register_remove_cpu_us_per_pair: round(daemonPairs.cpuUsPerCall, 1),
      lookup_cpu_ratio: round(noopLookup.cpuUsPerCall / daemonLookup.cpuUsPerCall, 3),
      register_remove_cpu_ratio: round(noopPairs.cpuUsPerCall / daemonPairs.cpuUsPerCall, 3),
      rps_by_concurrency: sweep,
    };
  } finally {
    await Promise.all(servers.map((s) => s.stop()));
  }
}
