/**
 * The memory store in-process, through the Store interface, with no gRPC:
 * Lookup by id against table size, a List page deep inside the largest
 * table, and the heap each session takes. Run in a process of its own (so
 * the heap holds nothing else, and with a heap raised for a million
 * sessions); bench/inprocess-runner.ts starts it for `npm run bench`.
 *
 *   node --expose-gc --max-old-space-size=4096 --conditions=source --import tsx \
 *     bench/inprocess.ts [--max-size N] [--lookups N]
 *
 * --max-size: the largest table (default 1,000,000); the lookup series is
 * measured at 10, 1,000, 100,000 and 1,000,000 sessions, those below it,
 * and at --max-size itself. --lookups: lookups measured per table size
 * (default 1,000,000), in 5 rounds, after one warm-up round of the same
 * length; the figure is the median round.
 *
 * Prints one JSON object on stdout.
 *
 * Sessions look like real ones: uuid-like ids, distinct normalized 100-byte
 * project paths, 20-character names, empty metadata (a Map of their own, as
 * the registry hands over), no ttl. Every string is flat, as protobuf
 * decoding makes it, and every lookup key is a fresh string, as a decoded
 * request carries: the store pays for hashing it and comparing it with the
 * stored id, as it does in the daemon.
 */
import { performance } from "node:perf_hooks";
import { parseArgs } from "node:util";

import type { NewSession } from "../src/core/model.js";
import type { Store } from "../src/core/store.js";
import { MemoryStore } from "../src/store/memory/store.js";
import { DEFAULT_CONFIG } from "../src/daemon/config.js";
import { idOf, nameOf, pathOf } from "./sessions.js";
import { median, round } from "./stats.js";

/** The table sizes of the lookup series; those below --max-size, then --max-size itself. */
const SERIES = [10, 1_000, 100_000, 1_000_000];
const ROUNDS = 5;
const PAGE_SIZE = 100;
/** Pages walked per List round, one after another from the middle of the table. */
const PAGES = 1_000;

const gc = (globalThis as { gc?: (options?: { type: "minor" }) => void }).gc;
if (gc === undefined) throw new Error("run with node --expose-gc");
// A plain gc() is a full collection; on Node 20, gc({ type: "major" }) was
// seen to leave a closed 100,000-session store (~80 MB) uncollected.
const fullGc = gc;

/** A deterministic PRNG (mulberry32): the same key sequence every run. */
function random(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function newStore(): Store {
  return new MemoryStore({
    defaultMaxSessions: DEFAULT_CONFIG.maxSessions,
    maxTables: DEFAULT_CONFIG.maxTables,
    watchHistory: DEFAULT_CONFIG.watchHistory,
  });
}

/** Session i's Register input, as the registry hands it to the store. */
function inputOf(i: number): NewSession {
  return { id: idOf(i), name: nameOf(i), projectPath: pathOf(i), metadata: new Map(), ttl: undefined };
}

/**
 * Creates table `t` with room for `size` sessions and registers sessions
 * 0..size-1, each input made right before its Register (as a request is
 * decoded right before it), so that a session's strings and objects lie
 * together in the heap as in the daemon; µs per Register plus its input.
 */
async function fill(store: Store, size: number): Promise<number> {
  await store.createTable("t", size);
  const start = performance.now();
  for (let i = 0; i < size; i++) await store.register("t", inputOf(i));
  return ((performance.now() - start) * 1000) / size;
}

/** µs to make one input, to take out of fill()'s figure. */
function inputCost(count: number): number {
  let length = 0;
  const start = performance.now();
  for (let i = 0; i < count; i++) length += inputOf(i).projectPath.length;
  const us = ((performance.now() - start) * 1000) / count;
  if (length !== count * 100) throw new Error("a path is not 100 bytes");
  return us;
}

/** Median over ROUNDS rounds (after one warm-up round) of µs per Lookup by id, keys uniformly at random. */
async function lookupCost(store: Store, size: number, total: number): Promise<number> {
  const lookups = Math.max(1, Math.round(total / ROUNDS));
  const next = random(size);
  const samples: number[] = [];
  let found = 0;
  for (let r = 0; r <= ROUNDS; r++) {
    const keys = new Array<string>(lookups);
    for (let i = 0; i < lookups; i++) keys[i] = idOf(Math.floor(next() * size));
    gc!({ type: "minor" });
    const start = performance.now();
    for (let i = 0; i < lookups; i++) {
      const s = await store.lookup("t", { by: "id", value: keys[i]! });
      found += s.revision > 0 ? 1 : 0;
    }
    const us = ((performance.now() - start) * 1000) / lookups;
    if (r > 0) samples.push(us);
  }
  if (found !== lookups * (ROUNDS + 1)) throw new Error("a lookup missed");
  return median(samples);
}

/** Median over ROUNDS rounds of µs per List page of 100, walking consecutive pages from the table's middle. */
async function listPageCost(store: Store, size: number): Promise<number> {
  const middle = await store.lookup("t", { by: "id", value: idOf(size >> 1) });
  const pages = Math.max(1, Math.min(PAGES, Math.floor(size / 2 / PAGE_SIZE) - 1));
  const samples: number[] = [];
  for (let r = 0; r <= ROUNDS; r++) {
    let after: string | undefined = String(middle.createRevision);
    gc!({ type: "minor" });
    const start = performance.now();
    for (let p = 0; p < pages; p++) {
      const page = await store.list("t", after, PAGE_SIZE);
      if (page.sessions.length === 0) throw new Error("empty page");
      // Only a table too small for PAGES pages (--max-size below ~200,000) gets to its end.
      after = page.nextCursor ?? String(middle.createRevision);
    }
    const us = ((performance.now() - start) * 1000) / pages;
    if (r > 0) samples.push(us);
  }
  return median(samples);
}

const { values } = parseArgs({
  options: { "max-size": { type: "string", default: "1000000" }, lookups: { type: "string", default: "1000000" } },
});
const maxSize = Number(values["max-size"]);
const lookups = Number(values.lookups);
if (!Number.isSafeInteger(maxSize) || maxSize < 10) throw new Error("--max-size must be an integer >= 10");
if (!Number.isSafeInteger(lookups) || lookups < 1) throw new Error("--lookups must be a positive integer");

const started = performance.now();
const sizes = [...SERIES.filter((s) => s < maxSize), maxSize];
const bySize: Record<string, number> = {};
for (const size of sizes.slice(0, -1)) {
  const store = newStore();
  await fill(store, size);
  bySize[size] = round(await lookupCost(store, size, lookups), 3);
  await store.close();
}

// The largest table: its heap first, on a heap holding nothing else of ours.
fullGc();
fullGc();
const heapBefore = process.memoryUsage().heapUsed;
const store = newStore();
const fillUs = await fill(store, maxSize);
fullGc();
fullGc();
const heapAfter = process.memoryUsage().heapUsed;

const registerUs = fillUs - inputCost(Math.min(maxSize, 200_000));
bySize[maxSize] = round(await lookupCost(store, maxSize, lookups), 3);
const listUs = await listPageCost(store, maxSize);
// Keeps the table reachable through every measurement above.
if ((await store.getTable("t")).sessionCount !== maxSize) throw new Error("table lost sessions");
await store.close();

const figures = {
  inprocess_max_size: maxSize,
  inprocess_lookups_per_size: lookups,
  lookup_us_at_10: bySize[10]!,
  lookup_us_at_1m: bySize[maxSize],
  lookup_1m_vs_10: round(bySize[maxSize] / bySize[10]!, 3),
  lookup_us_by_table_size: bySize,
  list_page_us_at_1m: round(listUs, 3),
  bytes_per_session: Math.round((heapAfter - heapBefore) / maxSize),
  register_us_inprocess: round(registerUs, 3),
  inprocess_seconds: round((performance.now() - started) / 1000, 1),
};
console.log(JSON.stringify(figures));
