/**
 * A probe of a server process's own heap, loaded into it with --import by
 * bench/alloc.ts. Each SIGUSR2 opens or closes a measured window; over a
 * window it records the garbage collections (v8.GCProfiler: kind and cost
 * of each), the bytes allocated (the used heap's growth between
 * collections, plus what each collection freed), and the process's CPU.
 * Every second window (1, 3, ...) also runs V8's sampling heap profiler,
 * keeping samples of objects already collected, which says where the
 * allocations come from. Closing window n writes $ALLOC_PROBE_OUT/window-n.json
 * and prints "alloc-probe: window n written" on stdout; opening prints
 * "alloc-probe: window n open" once the window runs.
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { join } from "node:path";
import v8 from "node:v8";

/** What a window holds: bench/alloc.ts reads it. */
export interface WindowFile {
  cpuUs: number;
  allocatedBytes: number;
  gcs: { type: string; costUs: number }[];
  /** The sampling heap profile (HeapProfiler.stopSampling), odd windows only. */
  sampled?: unknown;
}

interface GcStatistic {
  gcType: string;
  cost: number;
  beforeGC: { heapStatistics: { usedHeapSize: number } };
  afterGC: { heapStatistics: { usedHeapSize: number } };
}

const out = process.env.ALLOC_PROBE_OUT;
if (out === undefined) throw new Error("alloc-agent needs ALLOC_PROBE_OUT, a directory for its windows");

/** Sampling interval of the heap profiler, bytes: small, so that a few thousand calls give a fine breakdown. */
const SAMPLING_INTERVAL = 256;

const inspector = new Session();
inspector.connect();
const post = (method: string, params?: object) =>
  new Promise<unknown>((resolve, reject) => inspector.post(method, params, (err, result) => (err ? reject(err) : resolve(result))));

let window = 0;
let open: { profiler: v8.GCProfiler; usedAtStart: number; cpu: NodeJS.CpuUsage; sampling: boolean } | undefined;

async function toggle(): Promise<void> {
  if (open === undefined) {
    const sampling = window % 2 === 1;
    if (sampling) {
      await post("HeapProfiler.startSampling", {
        samplingInterval: SAMPLING_INTERVAL,
        includeObjectsCollectedByMajorGC: true,
        includeObjectsCollectedByMinorGC: true,
      });
    }
    const profiler = new v8.GCProfiler();
    profiler.start();
    open = { profiler, usedAtStart: v8.getHeapStatistics().used_heap_size, cpu: process.cpuUsage(), sampling };
    console.log(`alloc-probe: window ${window} open`);
    return;
  }
  const { profiler, usedAtStart, cpu, sampling } = open;
  open = undefined;
  const usedAtEnd = v8.getHeapStatistics().used_heap_size;
  const cpuUsed = process.cpuUsage(cpu);
  const stats = (profiler.stop() as unknown as { statistics: GcStatistic[] }).statistics;
  let allocated = 0;
  let last = usedAtStart;
  for (const s of stats) {
    allocated += s.beforeGC.heapStatistics.usedHeapSize - last;
    last = s.afterGC.heapStatistics.usedHeapSize;
  }
  allocated += usedAtEnd - last;
  const file: WindowFile = {
    cpuUs: cpuUsed.user + cpuUsed.system,
    allocatedBytes: allocated,
    gcs: stats.map((s) => ({ type: s.gcType, costUs: s.cost })),
  };
  if (sampling) file.sampled = ((await post("HeapProfiler.stopSampling")) as { profile: unknown }).profile;
  writeFileSync(join(out!, `window-${window}.json`), JSON.stringify(file));
  console.log(`alloc-probe: window ${window} written`);
  window++;
}

process.on("SIGUSR2", () => {
  toggle().catch((err: unknown) => {
    console.error("alloc-probe failed:", err);
    process.exit(1);
  });
});
