/**
 * Starts the servers under test as their own processes: the daemon with the
 * users' command (what `npm start` runs, minus npm) at --log-level warn, so
 * that its start-up and shutdown lines stay out of the benchmark's output,
 * and the bare grpc-js no-op server (./noop-server.ts) the same way. Both
 * print "listening on <address>" (the daemon with its HTTP address after
 * it, when its HTTP listener is on); both stop on SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface ServerProcess {
  address: string;
  /** `host:port` of the daemon's HTTP listener, when started with it. */
  httpAddress: string | undefined;
  /** `host:port` of the daemon's /metrics, when started with --metrics-listen. */
  metricsAddress: string | undefined;
  child: ChildProcess;
  /** User + system CPU time the process has used so far, in ms (Linux /proc). */
  cpuMs(): number;
  stop(): Promise<void>;
}

/** How a server process starts besides its own flags. */
export interface StartOptions {
  /** With the daemon's HTTP listener on 127.0.0.1:0, for figures that use it. */
  http?: boolean;
  /** Modules node imports (TypeScript too) before the server's entry, e.g. a probe of the process itself. */
  imports?: string[];
  /** Another entry than the daemon's main (e.g. a bench-only daemon that fills its store first), with the same flags. */
  entry?: string;
}

/** `nodeArgs` go to node itself, e.g. --cpu-prof for a profile. */
export function startDaemonProcess(flags: string[], nodeArgs: string[] = [], opts: StartOptions = {}): Promise<ServerProcess> {
  return startServerProcess(nodeArgs, opts.imports ?? [], [
    opts.entry ?? "src/daemon/main.ts",
    "--listen",
    "127.0.0.1:0",
    // Off for gRPC's figures: the HTTP listener would load its handler just after start, inside the first window's CPU.
    "--http-listen",
    opts.http === true ? "127.0.0.1:0" : "off",
    "--log-level",
    "warn",
    ...flags,
  ]);
}

export function startNoopProcess(nodeArgs: string[] = [], opts: Pick<StartOptions, "imports"> = {}): Promise<ServerProcess> {
  return startServerProcess(nodeArgs, opts.imports ?? [], ["bench/noop-server.ts", "--listen", "127.0.0.1:0"]);
}

async function startServerProcess(nodeArgs: string[], imports: string[], args: string[]): Promise<ServerProcess> {
  const preload = imports.flatMap((m) => ["--import", m]);
  const child = spawn(process.execPath, [...nodeArgs, "--conditions=source", "--import", "tsx", ...preload, ...args], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
  });
  const { address, httpAddress, metricsAddress } = await new Promise<{
    address: string;
    httpAddress: string | undefined;
    metricsAddress: string | undefined;
  }>((resolve, reject) => {
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      // The whole line: the HTTP address comes after the gRPC one.
      const m = /listening on (\S+)(?: and http:\/\/(\S+))?.*\n/.exec(out);
      if (m) resolve({ address: m[1]!, httpAddress: m[2], metricsAddress: /metrics: http:\/\/(\S+)\/metrics/.exec(m[0])?.[1] });
    });
    child.once("exit", (code) => reject(new Error(`${args[0]} exited with ${code} before listening`)));
  });
  return {
    address,
    httpAddress,
    metricsAddress,
    child,
    cpuMs: () => processCpuMs(child.pid!),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}

/** utime + stime of a process from /proc/<pid>/stat, in ms (the kernel counts in ticks of 10 ms). */
export function processCpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the parenthesized command name, which may itself contain spaces.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * 10;
}
