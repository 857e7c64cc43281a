/**
 * Lookup by id at the RPC level against table size: one daemon
 * (./lookup-scale-daemon.ts) holding a table of 1,000,000 sessions and one
 * of 10, the load generator looking up random ids in each, in alternating
 * rounds on the same daemon (large table, small table, three times), each
 * table's rounds added up. `lookup_1m_ratio` = the large table's Lookups/s
 * over the small one's: O(1) means it stays near 1.
 */
import { startDaemonProcess } from "./daemon-process.js";
import type { LoadGenerator } from "./load/generator.js";
import type { Workload } from "./load/protocol.js";
import { BIG_TABLE, SMALL_SESSIONS, SMALL_TABLE } from "./sessions.js";
import { round } from "./stats.js";
import { compare, type UnaryBenchOptions } from "./unary.js";

export interface LookupScaleResult {
  /** Sessions in the large table: 1,000,000, unless a smoke run made it smaller. */
  lookup_1m_table_size: number;
  lookup_rps_at_1m: number;
  lookup_rps_at_10: number;
  lookup_1m_ratio: number;
  /** The daemon's CPU per Lookup in each table, µs. */
  lookup_cpu_us_at_1m: number;
  lookup_cpu_us_at_10: number;
}

export async function lookupScaleBench(opts: UnaryBenchOptions, load: LoadGenerator, sessions: number): Promise<LookupScaleResult> {
  const daemon = await startDaemonProcess(["--sessions", String(sessions)], [], { entry: "bench/lookup-scale-daemon.ts" });
  try {
    const big: Workload = { kind: "lookupRandom", table: BIG_TABLE, size: sessions };
    const small: Workload = { kind: "lookupRandom", table: SMALL_TABLE, size: SMALL_SESSIONS };
    const [atBig, atSmall] = await compare(load, daemon, daemon, opts, big, small);
    return {
      lookup_1m_table_size: sessions,
      lookup_rps_at_1m: Math.round(atBig.rps),
      lookup_rps_at_10: Math.round(atSmall.rps),
      lookup_1m_ratio: round(atBig.rps / atSmall.rps, 3),
      lookup_cpu_us_at_1m: round(atBig.cpuUsPerCall, 1),
      lookup_cpu_us_at_10: round(atSmall.cpuUsPerCall, 1),
    };
  } finally {
    await daemon.stop();
  }
}
