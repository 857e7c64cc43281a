/**
 * One load-generator thread. For each task it is sent, it opens its own
 * connections to the task's server and drives the workload over them, closed
 * loop (N calls in flight, each answered call sends the next) or open loop (a
 * fixed send rate), for a warm-up and then a measured window; it posts
 * "ready" once connected, starts on "go", and posts its result.
 *
 * The calls are gRPC over HTTP/2 spoken directly with node:http2 (./h2-client.ts):
 * requests are encoded once by the generated SDK code, responses are checked
 * for their grpc-status but not decoded. A grpc-js client spends more CPU per
 * call than the server it calls; on a 2-core machine it would be what
 * saturates, and hide the server's cost. The servers under test are
 * unchanged: they parse, decode and encode every message as for any client.
 * Connect JSON calls (Lookup only) go the same way over node's HTTP/1.1
 * client (./connect-json-client.ts): JSON encoded once, answers not parsed.
 */
import { performance } from "node:perf_hooks";
import { parentPort } from "node:worker_threads";

import { ConnectJsonChannel } from "./connect-json-client.js";
import { H2GrpcChannel } from "./h2-client.js";
import { makeOp, type Channel } from "./ops.js";
import type { WorkerResult, WorkerTask } from "./protocol.js";

async function closedLoop(task: WorkerTask, op: (n: number) => Promise<void>, result: WorkerResult): Promise<void> {
  const start = performance.now();
  const from = start + task.warmupMs;
  const end = from + task.measureMs;
  let next = 0;
  const loop = async () => {
    while (performance.now() < end) {
      try {
        await op(next++);
        const now = performance.now();
        if (now >= from && now < end) result.completed++;
      } catch (err) {
        result.errors++;
        result.firstError ??= (err as Error).message;
      }
    }
  };
  await Promise.all(Array.from({ length: task.concurrency }, loop));
}

async function openLoop(task: WorkerTask, op: (n: number) => Promise<void>, rate: number, result: WorkerResult): Promise<void> {
  const interval = 1000 / rate;
  const start = performance.now();
  const from = start + task.warmupMs;
  const end = from + task.measureMs;
  let due = start;
  let next = 0;
  let inFlight = 0;
  /** False once every call of the window has been sent: the last one to answer then ends the run. */
  let sending = true;
  let settle!: () => void;
  const drained = new Promise<void>((resolve) => (settle = resolve));
  const send = () => {
    const sentAt = performance.now();
    inFlight++;
    op(next++)
      .then(
        () => {
          if (sentAt >= from && sentAt < end) {
            result.completed++;
            result.latenciesMs.push(performance.now() - sentAt);
          }
        },
        (err: unknown) => {
          result.errors++;
          result.firstError ??= (err as Error).message;
        },
      )
      .finally(() => {
        inFlight--;
        if (inFlight === 0 && !sending) settle();
      });
  };
  await new Promise<void>((done) => {
    const pump = () => {
      const now = performance.now();
      // Timers fire at best every ~1 ms: send every call that has come due since the last tick.
      while (due <= now && due < end) {
        if (inFlight < task.concurrency) send();
        else if (due >= from) result.dropped++;
        due += interval;
      }
      if (due >= end) {
        done();
        return;
      }
      setTimeout(pump, Math.max(0, due - performance.now()));
    };
    pump();
  });
  sending = false;
  if (inFlight > 0) await drained;
}

async function runTask(task: WorkerTask): Promise<WorkerResult> {
  const clients: Channel[] =
    task.transport === "connect-json"
      ? [new ConnectJsonChannel(task.address, task.concurrency)]
      : Array.from({ length: task.channels }, () => new H2GrpcChannel(task.address));
  try {
    // Connecting is never part of a measurement, and every worker starts its clock on the same "go".
    await Promise.all(clients.map((c) => c.connected()));
    parentPort!.postMessage("ready");
    await new Promise((resolve) => parentPort!.once("message", resolve));
    const op = makeOp(task, clients);
    const result: WorkerResult = { completed: 0, errors: 0, firstError: undefined, latenciesMs: [], dropped: 0 };
    if (task.rate === undefined) await closedLoop(task, op, result);
    else await openLoop(task, op, task.rate, result);
    return result;
  } finally {
    for (const c of clients) c.close();
  }
}

// Tasks come one at a time: the pool sends the next only after this one's result.
parentPort!.on("message", (m: WorkerTask | "go") => {
  if (m === "go") return;
  runTask(m).then(
    (result) => parentPort!.postMessage({ result }),
    (err: unknown) => parentPort!.postMessage({ error: (err as Error).stack ?? (err as Error).message }),
  );
});
