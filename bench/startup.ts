/**
 * `npm run bench:startup [-- --rounds N] [-- --out FILE]`: how long the
 * installed commands take to start, as ratios to `node -e 0` measured in the
 * same run (so that the machine's speed and load cancel out). It rebuilds
 * dist/ first, then, round after round (interleaved, median of N, at least
 * 7), times in wall-clock:
 *   node        `node -e 0`
 *   version     `session-registry --version`
 *   lookup      `session-registry lookup --name NAME` against a running daemon
 *   ready       `session-registry serve` from spawn to its ready line on stdout
 * Figures go to FILE (default bench/startup-results.json) and BENCHMARKS.md
 * ("Start-up") quotes them.
 */
import { spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { median } from "./stats.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const BIN = resolve(ROOT, "bin/session-registry.js");
const args = process.argv.slice(2);
const arg = (name: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 ? args[at + 1] : undefined;
};
const ROUNDS = Math.max(7, Number(arg("rounds") ?? 9));
const OUT = resolve(arg("out") ?? fileURLToPath(new URL("startup-results.json", import.meta.url)));

/** Runs a command to its exit (or, with `until`, to the first stdout line matching it, then SIGTERM); resolves the wall time in ms. */
function timeRun(argv: string[], until?: RegExp): Promise<{ ms: number; stdout: string }> {
  return new Promise((done, fail) => {
    const start = performance.now();
    const child = spawn(process.execPath, argv, {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "pipe"],
      env: { ...process.env, NODE_OPTIONS: "" },
    });
    let out = "";
    let err = "";
    let ms: number | undefined;
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      out += chunk;
      if (until !== undefined && ms === undefined && until.test(out)) {
        ms = performance.now() - start;
        child.kill("SIGTERM");
      }
    });
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
    child.on("close", (code) => {
      const wall = ms ?? performance.now() - start;
      if (until === undefined ? code !== 0 : ms === undefined)
        fail(new Error(`${argv.join(" ")} failed (exit ${code}): ${err.slice(0, 500)}`));
      else done({ ms: wall, stdout: out });
    });
  });
}

const { bundle } = await import("../scripts/build.mjs");
await bundle();

// One daemon to look sessions up in, for the whole run.
const daemonArgs = [BIN, "serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--log-level", "warn"];
const daemon = spawn(process.execPath, daemonArgs, { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] });
const addr = await new Promise<string>((ok, fail) => {
  let out = "";
  daemon.stdout.setEncoding("utf8").on("data", (chunk: string) => {
    out += chunk;
    const m = /listening on (\S+)/.exec(out);
    if (m) ok(m[1]!);
  });
  daemon.once("exit", (code) => fail(new Error(`the daemon exited with ${code} before listening`)));
});
await timeRun([BIN, "register", "--addr", addr, "--name", "bench", "--path", "/bench/startup"]);

const samples: Record<"node" | "version" | "lookup" | "ready", number[]> = { node: [], version: [], lookup: [], ready: [] };
try {
  for (let round = 0; round < ROUNDS; round++) {
    samples.node.push((await timeRun(["-e", "0"])).ms);
    samples.version.push((await timeRun([BIN, "--version"])).ms);
    samples.lookup.push((await timeRun([BIN, "lookup", "--addr", addr, "--name", "bench"])).ms);
    samples.ready.push((await timeRun(daemonArgs, /listening on/)).ms);
  }
} finally {
  daemon.kill("SIGTERM");
}

const ms = Object.fromEntries(Object.entries(samples).map(([k, v]) => [k, Math.round(median(v) * 10) / 10])) as Record<
  keyof typeof samples,
  number
>;
const ratio = (x: number) => Math.round((x / ms.node) * 100) / 100;
const results = {
  when: new Date().toISOString(),
  node: process.version,
  rounds: ROUNDS,
  median_ms: ms,
  ratios_to_node: { version: ratio(ms.version), lookup: ratio(ms.lookup), ready: ratio(ms.ready) },
  goals: { lookup: 2.5, ready: 3 },
};
writeFileSync(OUT, JSON.stringify(results, null, 2) + "\n");
console.log(
  `median of ${ROUNDS}: node -e 0 ${ms.node} ms; --version ${ms.version} ms (${results.ratios_to_node.version}x); lookup ${ms.lookup} ms (${results.ratios_to_node.lookup}x, goal 2.5x); ready ${ms.ready} ms (${results.ratios_to_node.ready}x, goal 3x)`,
);
console.log(`written to ${OUT}`);
