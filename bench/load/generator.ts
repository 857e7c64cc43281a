/**
 * The load generator: a pool of worker threads (./worker.ts), each opening
 * its own connections (HTTP/2, or HTTP/1.1 for Connect JSON) to the server
 * of each run, driving it together. The benchmark process holds no server:
 * the daemon and the no-op server run in processes of their own. The threads
 * are started once and reused by every run (starting one costs about a
 * second of compiling).
 */
import { Worker } from "node:worker_threads";

import type { Transport, WorkerResult, WorkerTask, Workload } from "./protocol.js";

export interface LoadOptions {
  address: string;
  /** Default: gRPC. */
  transport?: Transport;
  /** HTTP/2 connections per worker. */
  channelsPerWorker: number;
  /** Calls in flight over all workers (closed loop), or the cap on them (open loop). */
  concurrency: number;
  workload: Workload;
  warmupMs: number;
  measureMs: number;
  /** Open loop at this many calls per second over all workers; closed loop when absent. */
  rate?: number;
  /** Called when the workers are told to start (all of them connected): the warm-up begins now. */
  onGo?: () => void;
}

export interface LoadResult {
  /** Calls (pairs) completed per second in the measured window. */
  rps: number;
  /** Open loop: latencies of the measured calls, ms, unsorted. */
  latenciesMs: number[];
  dropped: number;
}

const TSX_API = JSON.stringify(import.meta.resolve("tsx/esm/api"));
const WORKER_ENTRY = JSON.stringify(new URL("./worker.ts", import.meta.url).href);

/** What a worker posts: "ready" when connected for a task, then its result, or an error message. */
type FromWorker = "ready" | { result: WorkerResult } | { error: string };

export class LoadGenerator {
  private readonly workers: Worker[];
  private failure: Error | undefined;
  private runs = 0;

  constructor(workers: number) {
    this.workers = Array.from({ length: workers }, (_, i) => {
      // The worker inherits this process's execArgv (--conditions=source), but not tsx's module
      // hooks (Node 20): it registers them itself, then imports the TypeScript entry.
      const w = new Worker(`import(${TSX_API}).then((tsx) => { tsx.register(); return import(${WORKER_ENTRY}); })`, {
        eval: true,
      });
      w.on("error", (err) => (this.failure ??= err));
      w.on("exit", (code) => (this.failure ??= new Error(`load worker ${i} exited with ${code}`)));
      return w;
    });
  }

  async run(opts: LoadOptions): Promise<LoadResult> {
    if (this.failure !== undefined) throw this.failure;
    // No more threads than calls in flight: a thread with none would idle and skew the split.
    const used = this.workers.slice(0, Math.max(1, Math.min(this.workers.length, opts.concurrency)));
    const n = used.length;
    const run = this.runs++;
    const tasks: WorkerTask[] = used.map((_, i) => ({
      worker: i,
      run,
      address: opts.address,
      transport: opts.transport ?? "grpc",
      channels: opts.channelsPerWorker,
      // Spread the in-flight calls and the rate evenly; the first workers take the remainder.
      concurrency: Math.floor(opts.concurrency / n) + (i < opts.concurrency % n ? 1 : 0),
      workload: opts.workload,
      warmupMs: opts.warmupMs,
      measureMs: opts.measureMs,
      ...(opts.rate !== undefined ? { rate: opts.rate / n } : {}),
    }));
    const replies = used.map((w, i) => this.converse(w, tasks[i]!));
    await Promise.all(replies.map((r) => r.ready));
    for (const w of used) w.postMessage("go");
    opts.onGo?.();
    const results = await Promise.all(replies.map((r) => r.result));
    const errors = results.reduce((sum, r) => sum + r.errors, 0);
    if (errors > 0) {
      const first = results.find((r) => r.firstError !== undefined)?.firstError;
      throw new Error(`${errors} ${opts.workload.kind} calls to ${opts.address} failed; first: ${first}`);
    }
    return {
      rps: results.reduce((sum, r) => sum + r.completed, 0) / (opts.measureMs / 1000),
      latenciesMs: results.flatMap((r) => r.latenciesMs),
      dropped: results.reduce((sum, r) => sum + r.dropped, 0),
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.terminate()));
  }

  /** Sends a task; `ready` resolves when the worker is connected, `result` with its figures. */
  private converse(worker: Worker, task: WorkerTask): { ready: Promise<void>; result: Promise<WorkerResult> } {
    let onReady!: () => void;
    const ready = new Promise<void>((resolve) => (onReady = resolve));
    const result = new Promise<WorkerResult>((resolve, reject) => {
      const onExit = () => reject(this.failure ?? new Error("a load worker stopped"));
      const onMessage = (m: FromWorker) => {
        if (m === "ready") {
          onReady();
          return;
        }
        worker.off("message", onMessage);
        worker.off("exit", onExit);
        if ("error" in m) reject(new Error(`load worker ${task.worker}: ${m.error}`));
        else resolve(m.result);
      };
      worker.on("message", onMessage);
      worker.once("exit", onExit);
    });
    worker.postMessage(task);
    // A worker that fails before it is ready must not leave the run waiting for it.
    return { ready: Promise.race([ready, result.then(() => undefined)]), result };
  }
}
