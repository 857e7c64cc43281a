/**
 * The daemon as a child process, started as scripts start it (one node
 * process running src/daemon/main.ts), for tests that need what only a
 * process shows: its stdout and exit, its resident memory under attack.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const LISTENING = /listening on 127\.0\.0\.1:(\d+)/;

export interface DaemonProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];

/** Starts `src/daemon/main.ts ARGS` in a node process of its own; `nodeArgs` go to node (e.g. a heap limit). */
export function spawnDaemon(args: string[], nodeArgs: string[] = []): DaemonProcess {
  // The daemon reads SESSION_REGISTRY_* variables; keep the test's environment out of it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESSION_REGISTRY_")));
  const child = spawn(process.execPath, [...nodeArgs, "--conditions=source", "--import", "tsx", "src/daemon/main.ts", ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' rather than 'exit': it comes after the output streams are drained.
    child.on("close", (code, signal) => resolve({ code, signal }));
  });
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Resolves with the port once the listening line is out; rejects if the process ends first. */
export function waitForPort(d: DaemonProcess): Promise<number> {
  return new Promise((resolve, reject) => {
    const check = (): boolean => {
      const m = LISTENING.exec(d.stdout());
      if (m !== null && d.stdout().includes("\n")) {
        d.child.stdout!.off("data", check);
        resolve(Number(m[1]));
        return true;
      }
      return false;
    };
    if (check()) return;
    d.child.stdout!.on("data", check);
    d.exited.then(({ code, signal }) => {
      if (!check()) reject(new Error(`daemon exited (code ${code}, signal ${signal}) before listening; stderr:\n${d.stderr()}`));
    });
  });
}

/** The process's resident set size in bytes (Linux /proc), or undefined once it is gone. */
export function rssOf(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m === null ? undefined : Number(m[1]) * 1024;
  } catch {
    return undefined;
  }
}

/** Kills whatever spawnDaemon started and is still running; for `after` hooks. */
export function killDaemons(): void {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) child.kill("SIGKILL");
  }
}
