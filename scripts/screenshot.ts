/**
 * `npm run screenshot`: remakes docs/page.png, the README's picture of the
 * live page, with the browser tests' setup (test/web-page/setup.ts): a
 * memory daemon with a few tables and sessions, and headless chromium.
 */
import { mkdirSync } from "node:fs";

import { bundlePage } from "../scripts/build.mjs";
import { launchBrowser, startPageDaemon } from "../test/web-page/setup.js";

const OUT = new URL("../docs/page.png", import.meta.url);

// The page as the sources are now, not a stale build.
await bundlePage();
const d = await startPageDaemon();
const browser = await launchBrowser();
try {
  const c = d.client();
  await c.createTable({ table: "agents", maxSessions: 4 });
  await c.createTable({ table: "ci", maxSessions: 50 });
  await c.createTable({ table: "editors", maxSessions: 10 });
  for (const [i, tool] of ["claude-code", "codex", "aider", "claude-code"].entries()) {
    await c.register({ projectPath: `/home/ada/agents/task-${i + 1}`, metadata: { tool } }, { table: "agents" });
  }
  for (let i = 1; i <= 12; i++) await c.register({ projectPath: `/builds/job-${1200 + i}`, ttlMs: 600_000 }, { table: "ci" });
  for (const p of ["/home/grace/notes", "/home/grace/src/compiler", "/home/linus/kernel"]) {
    await c.register({ projectPath: p, metadata: { tool: "vim" } }, { table: "editors" });
  }
  await c.register({
    projectPath: "/home/ada/src/api-server",
    metadata: { tool: "claude-code", branch: "main", pid: "48211" },
    ttlMs: 90_000,
  });
  await c.register({ projectPath: "/home/ada/src/web", name: "web ui", metadata: { tool: "cursor", branch: "feat/page" }, ttlMs: 30_000 });
  await c.register({ projectPath: "/home/grace/src/compiler", metadata: { tool: "zed" } });
  await c.register({ projectPath: "/srv/deploy/registry", id: "deploy-7", metadata: { tool: "ci", job: "1213" }, ttlMs: 300_000 });
  await c.register({ projectPath: "/home/linus/src/session-registry", metadata: { tool: "codex" }, ttlMs: 8_000 });

  const page = await browser.newPage({ viewport: { width: 1180, height: 400 }, deviceScaleFactor: 2, colorScheme: "light" });
  await page.goto(d.url);
  await page.locator('#sessions tbody tr[data-id="deploy-7"]').waitFor();
  await page.locator('button.table[data-table="ci"] .count', { hasText: "12 / 50" }).waitFor();
  // A few seconds of age, so the columns show the clock running.
  await page.waitForTimeout(3000);
  mkdirSync(new URL(".", OUT), { recursive: true });
  await page.screenshot({ path: OUT.pathname });
  console.log(`wrote ${OUT.pathname}`);
} finally {
  await browser.close();
  await d.stop();
}
