/**
 * `npm run bench:page [-- --rounds N]`: the live page's time from load to
 * its first full render with 10 tables of 100 sessions each, in headless
 * chromium against a memory daemon (the browser tests' setup,
 * test/web-page/setup.ts). Each round opens the page in a fresh browser
 * context (nothing cached) on one of the tables and stops the clock, in the
 * page, when all 10 tables and that table's 100 sessions are shown: the
 * figure is the page's performance.now() then, i.e. milliseconds since the
 * navigation started. Median and spread of N rounds (default 9) go to
 * bench/page-results.json; BENCHMARKS.md ("The live page") quotes them.
 */
import { writeFileSync } from "node:fs";

import { bundlePage } from "../scripts/build.mjs";
import { launchBrowser, startPageDaemon } from "../test/web-page/setup.js";
import { median } from "./stats.js";

const TABLES = 10;
const SESSIONS = 100;
const args = process.argv.slice(2);
const at = args.indexOf("--rounds");
const ROUNDS = at >= 0 ? Math.max(1, Number(args[at + 1])) : 9;
const OUT = new URL("page-results.json", import.meta.url);

// The page as the sources are now, not a stale build.
await bundlePage();
const d = await startPageDaemon();
const browser = await launchBrowser();
try {
  const c = d.client();
  const names = Array.from({ length: TABLES }, (_, i) => `table-${String(i).padStart(2, "0")}`);
  for (const table of names) {
    await c.createTable({ table, maxSessions: SESSIONS });
    await Promise.all(
      Array.from({ length: SESSIONS }, (_, i) =>
        c.register({ projectPath: `/work/${table}/project-${i}`, metadata: { tool: "bench", n: String(i) }, ttlMs: 3_600_000 }, { table }),
      ),
    );
  }
  const done =
    `document.querySelectorAll("button.table").length === ${TABLES + 1} && ` +
    `document.querySelectorAll("#sessions tbody tr").length === ${SESSIONS} ? performance.now() : false`;
  const times: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(`${d.url}#${names[round % TABLES]!}`);
    const handle = await page.waitForFunction(done, undefined, { polling: "raf", timeout: 10_000 });
    times.push((await handle.jsonValue()) as number);
    await context.close();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const result = {
    tables: TABLES,
    sessionsPerTable: SESSIONS,
    rounds: ROUNDS,
    medianMs: Math.round(median(times)),
    minMs: Math.round(sorted[0]!),
    maxMs: Math.round(sorted[sorted.length - 1]!),
    chromium: browser.version(),
  };
  writeFileSync(OUT, `${JSON.stringify(result, null, 2)}\n`);
  console.log(JSON.stringify(result));
} finally {
  await browser.close();
  await d.stop();
}
