/**
 * The daemon as a child process, started as scripts start it (one node
 * process running src/daemon/main.ts), for tests that need what only a
 * process shows: its stdout and exit, its resident memory under attack.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { credentials } from "@grpc/grpc-js";
import { SessionRegistryClient as GeneratedClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const LISTENING = /listening on 127\.0\.0\.1:(\d+)/;

export interface DaemonProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];

/**
 * Starts `src/daemon/main.ts ARGS` in a node process of its own; `nodeArgs`
 * go to node (e.g. a heap limit); `openFiles` sets the process's open-file
 * limit (`ulimit -n`, through util-linux's prlimit).
 */
export function spawnDaemon(args: string[], nodeArgs: string[] = [], openFiles?: number): DaemonProcess {
  // The daemon reads SESSION_REGISTRY_* variables; keep the test's environment out of it.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESSION_REGISTRY_")));
  // Off unless asked for: daemons started in parallel must not compete for the default port.
  env.SESSION_REGISTRY_HTTP_LISTEN = "off";
  const command = [process.execPath, ...nodeArgs, "--conditions=source", "--import", "tsx", "src/daemon/main.ts", ...args];
  const limited = openFiles === undefined ? command : ["prlimit", `--nofile=${openFiles}:${openFiles}`, ...command];
  const child = spawn(limited[0]!, limited.slice(1), {
    cwd: REPO_ROOT,
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
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
    void d.exited.then(({ code, signal }) => {
      if (!check()) reject(new Error(`daemon exited (code ${code}, signal ${signal}) before listening; stderr:\n${d.stderr()}`));
    });
  });
}

/** A daemon process on 127.0.0.1 whose tables hold `maxSessions`; `stop()` sends SIGTERM and waits, for `after` hooks. */
export async function startSmallDaemon(maxSessions: number): Promise<{ address: string; stop(): Promise<void> }> {
  const daemon = spawnDaemon(["--listen", "127.0.0.1:0", "--max-sessions", String(maxSessions), "--log-level", "warn"]);
  const address = `127.0.0.1:${await waitForPort(daemon)}`;
  return {
    address,
    async stop() {
      daemon.child.kill("SIGTERM");
      await daemon.exited;
    },
  };
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

/**
 * A well-behaved client on a connection of its own (grpc-js would otherwise
 * share one with the test's other clients of the address), looking a
 * session up in a loop until stopped.
 */
export class Probe {
  answered = 0;
  failures: string[] = [];
  private running = true;
  private readonly loop: Promise<void>;
  private readonly client: GeneratedClient;

  constructor(address: string, table: string, id: string) {
    this.client = new GeneratedClient(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    this.loop = (async () => {
      while (this.running) {
        await new Promise<void>((resolve) =>
          this.client.lookup({ table, key: { $case: "id", value: id } }, (err) => {
            if (err) this.failures.push(`${err.code} ${err.details}`);
            else this.answered++;
            resolve();
          }),
        );
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.client.close();
  }
}
