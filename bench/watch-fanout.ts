/**
 * Watch fan-out: W watchers on one table, then sequential Registers; for
 * each, the time from sending the Register until every watcher has its
 * REGISTERED event (and, per delivery, until each watcher has it). The
 * watchers live in this process, spread over several channels (separate
 * HTTP/2 connections); the daemon is a separate process.
 */
import { performance } from "node:perf_hooks";
import { credentials, type ClientReadableStream } from "@grpc/grpc-js";
import {
  EventType,
  SessionRegistryClient,
  type WatchResponse,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { startDaemonProcess } from "./daemon-process.js";
import { percentile, round } from "./stats.js";

export interface FanoutOptions {
  watchers: number;
  channels: number;
  registers: number;
}

export interface FanoutResult {
  watchers: number;
  registers: number;
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
  const daemon = await startDaemonProcess([
    "--max-watchers",
    String(opts.watchers + 10),
    "--max-sessions",
    "1000000",
    "--max-concurrent-streams",
    String(opts.watchers + 10),
  ]);
  const clients = Array.from(
    { length: opts.channels },
    () => new SessionRegistryClient(daemon.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 }),
  );
  const streams: ClientReadableStream<WatchResponse>[] = [];
  try {
    const call = <T>(f: (cb: (err: Error | null, res: T) => void) => void) =>
      new Promise<T>((resolve, reject) => f((err, res) => (err ? reject(err) : resolve(res))));
    const writer = clients[0]!;
    await call((cb) => writer.createTable({ table: "fanout", maxSessions: 0 }, cb));

    // Per pending Register: when it was sent, and how many watchers have its event.
    const pending = new Map<string, { sent: number; seen: number; done: () => void }>();
    const each: number[] = [];
    let snapshots = 0;
    let allSnapshots: () => void = () => {};
    const snapshotsDone = new Promise<void>((resolve) => (allSnapshots = resolve));

    for (let i = 0; i < opts.watchers; i++) {
      const stream = clients[i % clients.length]!.watch({ table: "fanout", startRevision: 0 });
      stream.on("data", (m: WatchResponse) => {
        const now = performance.now();
        if (m.kind?.$case === "snapshot") {
          if (++snapshots === opts.watchers) allSnapshots();
          return;
        }
        if (m.kind?.$case !== "event" || m.kind.value.type !== EventType.EVENT_TYPE_REGISTERED) return;
        const p = pending.get(m.kind.value.session?.id ?? "");
        if (p === undefined) return;
        each.push(now - p.sent);
        if (++p.seen === opts.watchers) p.done();
      });
      stream.on("error", () => {});
      streams.push(stream);
    }
    await snapshotsDone;

    const all: number[] = [];
    for (let i = 0; i < opts.registers; i++) {
      const id = `s${i}`;
      const delivered = new Promise<void>((resolve) => pending.set(id, { sent: performance.now(), seen: 0, done: resolve }));
      const sent = pending.get(id)!.sent;
      await call((cb) => writer.register({ requestId: "", table: "fanout", session: { id, name: "", projectPath: `/bench/${id}`, metadata: new Map(), createTime: undefined, updateTime: undefined, revision: 0, ttl: undefined, expireTime: undefined } }, cb));
      await delivered;
      all.push(performance.now() - sent);
      pending.delete(id);
    }
    return {
      watchers: opts.watchers,
      registers: opts.registers,
      all_p50_ms: round(percentile(all, 50)),
      all_p99_ms: round(percentile(all, 99)),
      each_p50_ms: round(percentile(each, 50)),
      each_p99_ms: round(percentile(each, 99)),
    };
  } finally {
    for (const s of streams) s.cancel();
    for (const c of clients) c.close();
    await daemon.stop();
  }
}
