/**
 * Watch fan-out: W watchers on one table, then sequential Registers; for
 * each, the time from sending the Register until every watcher has its
 * REGISTERED event (and, per delivery, until each watcher has it). The
 * watchers live in this process, spread over several channels (separate
 * HTTP/2 connections); the daemon is a separate process.
 *
 * The watchers speak gRPC over node:http2 directly (./load/h2-client.ts)
 * and decode each message with the SDK's generated code: all 1,000 streams
 * end in this one process, on the daemon's 2 cores, and grpc-js clients
 * there spent more CPU per event than the daemon, so the figure measured
 * the receiving end more than the daemon (see BENCHMARKS.md).
 */
import { performance } from "node:perf_hooks";
import { credentials } from "@grpc/grpc-js";
import {
  EventType,
  SessionRegistryClient,
  WatchRequest,
  WatchResponse,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { call, sessionMessage } from "./calls.js";
import { startDaemonProcess } from "./daemon-process.js";
import { H2GrpcChannel } from "./load/h2-client.js";
import { percentile, round } from "./stats.js";

export interface FanoutOptions {
  watchers: number;
  channels: number;
  registers: number;
  /** Flags for the daemon's node (e.g. --cpu-prof). */
  daemonNodeArgs?: string[];
}

export interface FanoutResult {
  watchers: number;
  registers: number;
  /** CPU the daemon spent per Register and its fan-out (/proc; 10 ms ticks, so over many Registers). */
  daemon_cpu_ms_per_event: number;
  /** CPU this process (every watcher's receiving end) spent per Register and its fan-out. */
  client_cpu_ms_per_event: number;
  /** Register sent -> the last watcher has the event. */
  all_p50_ms: number;
  all_p99_ms: number;
  /** Register sent -> one watcher has the event, over every delivery. */
  each_p50_ms: number;
  each_p99_ms: number;
}

export async function watchFanout(opts: FanoutOptions): Promise<FanoutResult> {
  // Every watcher is a stream; the default --max-concurrent-streams (100 per connection) would queue the
  // writer's Register behind channel 0's 100 watchers.
  const daemon = await startDaemonProcess(
    ["--max-watchers", String(opts.watchers + 10), "--max-sessions", "1000000", "--max-concurrent-streams", String(opts.watchers + 10)],
    opts.daemonNodeArgs,
  );
  const writer = new SessionRegistryClient(daemon.address, credentials.createInsecure());
  const channels = Array.from({ length: opts.channels }, () => new H2GrpcChannel(daemon.address));
  const cancels: (() => void)[] = [];
  let closing = false;
  try {
    await call((cb) => writer.createTable({ table: "fanout", maxSessions: 0 }, cb));
    await Promise.all(channels.map((c) => c.connected()));

    // Per pending Register: when it was sent, and how many watchers have its event.
    const pending = new Map<string, { sent: number; seen: number; done: () => void }>();
    const each: number[] = [];
    let snapshots = 0;
    let allSnapshots: () => void = () => {};
    const snapshotsDone = new Promise<void>((resolve) => (allSnapshots = resolve));
    // A watch that ends before the run does fails it, instead of leaving a wait unanswered.
    let fail!: (err: Error) => void;
    const failed = new Promise<never>((_, reject) => (fail = reject));
    failed.catch(() => {});

    const request = WatchRequest.encode({ table: "fanout", startRevision: 0, tableUid: "" }).finish();
    for (let i = 0; i < opts.watchers; i++) {
      const onMessage = (bytes: Buffer) => {
        const now = performance.now();
        const m = WatchResponse.decode(bytes);
        if (m.kind?.$case === "snapshot") {
          if (++snapshots === opts.watchers) allSnapshots();
          return;
        }
        if (m.kind?.$case !== "event" || m.kind.value.type !== EventType.EVENT_TYPE_REGISTERED) return;
        const p = pending.get(m.kind.value.session?.id ?? "");
        if (p === undefined) return;
        each.push(now - p.sent);
        if (++p.seen === opts.watchers) p.done();
      };
      const onEnd = (err?: Error) => {
        if (!closing) fail(err ?? new Error(`watcher ${i} ended before the run did`));
      };
      cancels.push(channels[i % channels.length]!.serverStream("/sessionregistry.v1.SessionRegistry/Watch", request, onMessage, onEnd));
    }
    await Promise.race([snapshotsDone, failed]);

    // A few Registers first, not counted: the first events through a fresh daemon run cold code.
    const warmup = Math.max(5, Math.ceil(opts.registers / 10));
    const all: number[] = [];
    let daemonCpuFrom = daemon.cpuMs();
    let clientCpuFrom = process.cpuUsage();
    for (let i = -warmup; i < opts.registers; i++) {
      if (i === 0) {
        all.length = 0;
        each.length = 0;
        daemonCpuFrom = daemon.cpuMs();
        clientCpuFrom = process.cpuUsage();
      }
      const id = `s${i}`;
      const delivered = new Promise<void>((resolve) => pending.set(id, { sent: performance.now(), seen: 0, done: resolve }));
      const sent = pending.get(id)!.sent;
      await call((cb) =>
        writer.register({ requestId: "", table: "fanout", session: sessionMessage({ id, projectPath: `/bench/${id}` }) }, cb),
      );
      await Promise.race([delivered, failed]);
      all.push(performance.now() - sent);
      pending.delete(id);
    }
    const daemonCpuMs = daemon.cpuMs() - daemonCpuFrom;
    const clientCpu = process.cpuUsage(clientCpuFrom);
    return {
      watchers: opts.watchers,
      registers: opts.registers,
      daemon_cpu_ms_per_event: round(daemonCpuMs / opts.registers),
      client_cpu_ms_per_event: round((clientCpu.user + clientCpu.system) / 1000 / opts.registers),
      all_p50_ms: round(percentile(all, 50)),
      all_p99_ms: round(percentile(all, 99)),
      each_p50_ms: round(percentile(each, 50)),
      each_p99_ms: round(percentile(each, 99)),
    };
  } finally {
    closing = true;
    for (const cancel of cancels) cancel();
    for (const c of channels) c.close();
    writer.close();
    await daemon.stop();
  }
}
