/**
 * Lookup over the HTTP door (Connect protocol, JSON) against Lookup over
 * gRPC: one daemon serving both listeners, the same table and ids, the same
 * calls in flight, in alternating rounds (./unary.ts's compare). gRPC goes
 * over the load generator's HTTP/2 client, `channelsPerWorker` connections;
 * Connect JSON over node's http.Agent with keep-alive, one connection per
 * call in flight, as HTTP/1.1 carries one request at a time. Each side's
 * daemon CPU per call is measured too: it holds whichever saturates first.
 */
import { startDaemonProcess } from "./daemon-process.js";
import type { LoadGenerator } from "./load/generator.js";
import type { Workload } from "./load/protocol.js";
import { round } from "./stats.js";
import { compare, prepare, TABLE, type UnaryBenchOptions } from "./unary.js";

export interface ConnectBenchResult {
  grpc_lookup_rps: number;
  connect_json_lookup_rps: number;
  /** Connect JSON's Lookups/s over gRPC's. */
  connect_lookup_ratio: number;
  grpc_lookup_cpu_us_per_call: number;
  connect_json_lookup_cpu_us_per_call: number;
  /** gRPC's daemon CPU per Lookup over Connect JSON's: the throughput ratio if the daemon alone saturated. */
  connect_lookup_cpu_ratio: number;
}

export async function connectBench(opts: UnaryBenchOptions, load: LoadGenerator): Promise<ConnectBenchResult> {
  const daemon = await startDaemonProcess([], [], { http: true });
  try {
    const ids = await prepare(daemon.address, opts.lookupSessions);
    const lookup: Workload = { kind: "lookup", table: TABLE, ids };
    const json = { address: daemon.httpAddress!, cpuMs: () => daemon.cpuMs(), transport: "connect-json" as const };
    const [grpc, connect] = await compare(load, daemon, json, opts, lookup);
    return {
      grpc_lookup_rps: Math.round(grpc.rps),
      connect_json_lookup_rps: Math.round(connect.rps),
      connect_lookup_ratio: round(connect.rps / grpc.rps, 3),
      grpc_lookup_cpu_us_per_call: round(grpc.cpuUsPerCall, 1),
      connect_json_lookup_cpu_us_per_call: round(connect.cpuUsPerCall, 1),
      connect_lookup_cpu_ratio: round(grpc.cpuUsPerCall / connect.cpuUsPerCall, 3),
    };
  } finally {
    await daemon.stop();
  }
}
