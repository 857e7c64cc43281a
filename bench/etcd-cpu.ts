/**
 * One-off probe behind BENCHMARKS.md's "etcd store vs raw etcd" reading, not
 * part of `npm run bench`: CPU used by etcd, the daemon and this generator
 * while Registers run (the same closed loop as bench/etcd.ts, 3 s warm-up,
 * 8 s measured). Linux only (reads /proc/<pid>/stat).
 *
 *   node --conditions=source --import tsx bench/etcd-cpu.ts etcd|memory
 */
import { performance } from "node:perf_hooks";

import { startEtcd } from "../test/helpers/etcd.js";
import { processCpuMs } from "./daemon-process.js";
import { closedLoop, startGenerator } from "./etcd.js";
import { round } from "./stats.js";

/** CPU seconds (user + system) a process has used so far. */
const cpuSeconds = (pid: number): number => processCpuMs(pid) / 1000;

const mode = process.argv[2] === "memory" ? "memory" : "etcd";
const opts = { warmupMs: 3_000, measureMs: 8_000, concurrency: 64, channels: 4, lookupSessions: 0 };
const etcd = mode === "etcd" ? await startEtcd() : undefined;
try {
  const gen = await startGenerator(
    etcd === undefined ? [] : ["--store", "etcd", "--etcd-endpoints", etcd.endpoint, "--etcd-prefix", "/bench-cpu/"],
    opts.channels,
  );
  try {
    await gen.createTable("reg", 1_000_000);
    const etcdPid = etcd?.pid();
    const daemonPid = gen.daemon.child.pid!;
    let start: { etcd: number; daemon: number; self: NodeJS.CpuUsage; at: number } | undefined;
    const timer = setTimeout(() => {
      start = {
        etcd: etcdPid === undefined ? 0 : cpuSeconds(etcdPid),
        daemon: cpuSeconds(daemonPid),
        self: process.cpuUsage(),
        at: performance.now(),
      };
    }, opts.warmupMs);
    const rps = await closedLoop(opts, (i) => gen.register(i, "reg", `c-${i}`));
    clearTimeout(timer);
    const s = start!;
    const wall = (performance.now() - s.at) / 1000;
    const self = process.cpuUsage(s.self);
    console.log({
      mode,
      register_rps: round(rps, 0),
      etcd_cores: etcdPid === undefined ? 0 : round((cpuSeconds(etcdPid) - s.etcd) / wall),
      daemon_cores: round((cpuSeconds(daemonPid) - s.daemon) / wall),
      generator_cores: round((self.user + self.system) / 1e6 / wall),
    });
  } finally {
    await gen.close();
  }
} finally {
  await etcd?.stop();
}
