/**
 * Runs bench/inprocess.ts in a process of its own: its heap figure must see
 * nothing but the store, it needs --expose-gc, and a million sessions need a
 * larger heap than Node's default.
 */
import { spawn } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface InProcessOptions {
  /** The largest table; 1,000,000 for the figures. */
  maxSize: number;
  /** Lookups measured per table size (5 rounds, plus a warm-up round). */
  lookups: number;
}

/**
 * The figures, keyed as in results.json: `lookup_us_at_10`,
 * `lookup_us_at_1m` (at the largest table, `inprocess_max_size`, which is
 * 1,000,000 unless `maxSize` says less), `lookup_1m_vs_10`,
 * `lookup_us_by_table_size` ({"10": µs, "1000": µs, ...}),
 * `list_page_us_at_1m`, `bytes_per_session`, `register_us_inprocess`,
 * `inprocess_lookups_per_size`, `inprocess_seconds`.
 */
export async function runInProcess(opts: InProcessOptions): Promise<Record<string, number | Record<string, number>>> {
  // ~0.6 KB per session plus the lookup keys; 4 GB leaves room at 1,000,000.
  const heapMb = Math.max(1024, Math.ceil((opts.maxSize * 4096) / 2 ** 20));
  const child = spawn(
    process.execPath,
    [
      "--expose-gc",
      `--max-old-space-size=${heapMb}`,
      "--conditions=source",
      "--import",
      "tsx",
      "bench/inprocess.ts",
      "--max-size",
      String(opts.maxSize),
      "--lookups",
      String(opts.lookups),
    ],
    { cwd: ROOT, stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const [code, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
  if (code !== 0) throw new Error(`bench/inprocess.ts exited with ${code ?? signal}:\n${stderr}`);
  const last = stdout.trim().split("\n").pop() ?? "";
  return JSON.parse(last) as Record<string, number | Record<string, number>>;
}
