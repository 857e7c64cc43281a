/**
 * Runs the real CLI binary (`node bin/session-registry.js ...`) as a child
 * process from the repository root, with an environment that holds none of
 * the caller's SESSION_REGISTRY_* variables and no NODE_OPTIONS, so each run
 * starts as a user's would from a clean checkout.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";

export const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BIN = "bin/session-registry.js";

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliProcess {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves once stdout matches; rejects if the process ends first. */
  waitForStdout(pattern: RegExp): Promise<void>;
  /** Resolves when the process has exited and its output is drained. */
  exited: Promise<CliResult>;
}

const children = new Set<ChildProcess>();

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESSION_REGISTRY_") && k !== "NODE_OPTIONS"));
  // A daemon started through the CLI keeps its HTTP listener off unless asked: tests run daemons in parallel.
  return { ...env, SESSION_REGISTRY_HTTP_LISTEN: "off", ...extra };
}

export function startCli(args: readonly string[], options: { env?: Record<string, string> } = {}): CliProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    cwd: REPO_ROOT,
    env: cleanEnv(options.env ?? {}),
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.add(child);
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  const exited = new Promise<CliResult>((resolve) => {
    // 'close' rather than 'exit': it comes after the output streams are drained.
    child.on("close", (code, signal) => {
      children.delete(child);
      resolve({ code, signal, stdout: out, stderr: err });
    });
  });
  const waitForStdout = (pattern: RegExp) =>
    new Promise<void>((resolve, reject) => {
      const check = () => {
        if (!pattern.test(out)) return;
        child.stdout.off("data", check);
        resolve();
      };
      child.stdout.on("data", check);
      check();
      void exited.then((r) => {
        if (!pattern.test(out)) {
          reject(
            new Error(
              `CLI exited (code ${r.code}, signal ${r.signal}) before stdout matched ${pattern}.\nstdout:\n${out}\nstderr:\n${err}`,
            ),
          );
        }
      });
    });
  return { child, stdout: () => out, stderr: () => err, waitForStdout, exited };
}

/** Runs the CLI to completion. */
export function runCli(args: readonly string[], options: { env?: Record<string, string> } = {}): Promise<CliResult> {
  return startCli(args, options).exited;
}

/** Kills whatever a failed test left running; call from an `after` hook. */
export function killLeftoverClis(): void {
  for (const child of children) child.kill("SIGKILL");
}

/** Parses stdout as one JSON document, failing with the output when it is not; the caller names its shape. */
export function parseJson(r: CliResult): unknown {
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`stdout is not JSON (exit ${r.code}).\nstdout:\n${r.stdout}\nstderr:\n${r.stderr}`);
  }
}

/** A one-line summary for assertion messages. */
export function summary(r: CliResult): string {
  return `exit ${r.code}${r.signal ? ` (${r.signal})` : ""}; stdout: ${JSON.stringify(r.stdout)}; stderr: ${JSON.stringify(r.stderr)}`;
}
