/**
 * The live page in a real browser (chromium, headless) against a real
 * daemon: it lists the tables and keeps their counts live, shows a session
 * registered over gRPC within a second and drops it when it expires or is removed, marks a full table,
 * resyncs after the daemon restarts with a new history, and with tokens asks
 * for one and shows a read token's refused Remove. Waits are for what the
 * page shows, never sleeps.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import type { Browser, Page } from "playwright-core";

import { eventually } from "../helpers/daemon.js";
import { launchBrowser, startPageDaemon, type PageDaemon } from "./setup.js";

const row = (page: Page, id: string) => page.locator(`#sessions tbody tr[data-id="${id}"]`);
const tableButton = (page: Page, name: string) => page.locator(`button.table[data-table="${name}"]`);
/** The attribute of every element the selector matches, read at one instant in the page (the test's types know no DOM). */
const attributes = (page: Page, selector: string, name: string) =>
  page.evaluate<(string | null)[]>(
    `[...document.querySelectorAll(${JSON.stringify(selector)})].map((e) => e.getAttribute(${JSON.stringify(name)}))`,
  );
const sessionIds = (page: Page) => attributes(page, "#sessions tbody tr", "data-id");

/** WCAG's contrast ratio of two CSS rgb()/rgba() colors. */
function contrast(a: string, b: string): number {
  const luminance = (css: string) => {
    const [r, g, b_] = css
      .match(/[\d.]+/g)!
      .slice(0, 3)
      .map((v) => Number(v) / 255);
    const lin = (c: number) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    return 0.2126 * lin(r!) + 0.7152 * lin(g!) + 0.0722 * lin(b_!);
  };
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe("the live page, in a browser", function () {
  this.timeout(30_000);
  let browser: Browser;
  const daemons: PageDaemon[] = [];
  let page: Page;

  before(async () => {
    browser = await launchBrowser();
  });

  beforeEach(async () => {
    page = await browser.newPage();
  });

  afterEach(async () => {
    await page.close();
    for (const d of daemons.splice(0)) await d.stop();
  });

  after(async () => {
    await browser.close();
  });

  async function daemon(config?: Parameters<typeof startPageDaemon>[0]): Promise<PageDaemon> {
    const d = await startPageDaemon(config);
    daemons.push(d);
    return d;
  }

  it("lists every table with its count against its limit", async () => {
    const d = await daemon();
    const c = d.client();
    await c.createTable({ table: "alpha", maxSessions: 3 });
    await c.createTable({ table: "beta", maxSessions: 20 });
    await c.register({ projectPath: "/src/one" }, { table: "beta" });
    await page.goto(d.url);
    await tableButton(page, "alpha").locator(".count", { hasText: "0 / 3" }).waitFor({ timeout: 5000 });
    await page.locator('button.table[data-table="beta"] .count', { hasText: "1 / 20" }).waitFor({ timeout: 5000 });
    expect(await attributes(page, "button.table", "data-table")).to.deep.equal(["alpha", "beta", "default"]);
  });

  it("keeps every table's count live from one WatchTables stream, with no polling", async () => {
    const d = await daemon();
    const c = d.client();
    const calls: string[] = [];
    page.on("request", (req) => calls.push(new URL(req.url()).pathname.split("/").pop()!));
    await page.goto(d.url);
    await page.locator("#status", { hasText: "live" }).waitFor({ timeout: 5000 });
    // The page shows table default; these changes are to others.
    await c.createTable({ table: "other", maxSessions: 4 });
    await tableButton(page, "other").locator(".count", { hasText: "0 / 4" }).waitFor({ timeout: 1000 });
    const registered = Date.now();
    await c.register({ projectPath: "/x" }, { table: "other" });
    await tableButton(page, "other").locator(".count", { hasText: "1 / 4" }).waitFor({ timeout: 1000 });
    expect(Date.now() - registered).to.be.below(1000);
    await c.deleteTable("other", { force: true });
    await tableButton(page, "other").waitFor({ state: "detached", timeout: 1000 });
    expect(calls.filter((m) => m === "WatchTables")).to.have.length(1);
    expect(calls).to.not.include("ListTables");
  });

  it("shows a session registered over gRPC within a second, with its fields", async () => {
    const d = await daemon();
    await page.goto(d.url);
    await page.locator("#status", { hasText: "live" }).waitFor({ timeout: 5000 });
    const registered = Date.now();
    const s = await d.client().register({ projectPath: "/home/ada/api", name: "api", metadata: { tool: "editor" }, ttlMs: 60_000 });
    await row(page, s.id).waitFor({ timeout: 1000 });
    expect(Date.now() - registered).to.be.below(1000);
    const cells = await row(page, s.id).locator("td").allTextContents();
    expect(cells.slice(0, 3)).to.deep.equal(["api", s.id, "/home/ada/api"]);
    expect(cells[4]).to.match(/^0:(59|60|58)$|^1:00$/);
    expect(cells[5]).to.equal("tool=editor");
  });

  it("drops a session when its ttl runs out and when it is removed", async () => {
    const d = await daemon();
    const c = d.client();
    await page.goto(d.url);
    const short = await c.register({ projectPath: "/tmp/short", ttlMs: 1000 });
    const removed = await c.register({ projectPath: "/tmp/removed" });
    const kept = await c.register({ projectPath: "/tmp/kept" });
    await row(page, short.id).waitFor({ timeout: 2000 });
    await row(page, removed.id).waitFor({ timeout: 2000 });
    await row(page, short.id).waitFor({ state: "detached", timeout: 5000 });
    await c.remove(removed.id);
    await row(page, removed.id).waitFor({ state: "detached", timeout: 2000 });
    expect(await sessionIds(page)).to.deep.equal([kept.id]);
  });

  it("keeps counting down a session that is kept alive (KeepAlive sends no event: the page reads it again)", async () => {
    const d = await daemon();
    const c = d.client();
    await page.goto(d.url);
    const s = await c.register({ projectPath: "/tmp/kept-alive", ttlMs: 2000 });
    const firstExpiry = Date.now() + 2000;
    const keeping = setInterval(() => void c.keepAlive(s.id).catch(() => undefined), 500);
    try {
      await row(page, s.id).waitFor({ timeout: 2000 });
      // Past the expiry the page first saw, the session still lives and its countdown shows its new expiry.
      const ttlCell = `#sessions tbody tr[data-id="${s.id}"] td:nth-child(5)`;
      // Polled from here: the page's CSP (no eval) rules out playwright's waitForFunction.
      await eventually(
        async () => Date.now() > firstExpiry + 1500 && /^0:0[12]$/.test((await page.locator(ttlCell).textContent()) ?? ""),
        "a countdown past the first expiry",
        8000,
      );
    } finally {
      clearInterval(keeping);
    }
  });

  it("removes a session from the page once editing is on, and not before", async () => {
    const d = await daemon();
    const s = await d.client().register({ projectPath: "/tmp/gone-soon" });
    await page.goto(d.url);
    await row(page, s.id).waitFor({ timeout: 5000 });
    expect(await row(page, s.id).locator("button.remove").isVisible()).to.equal(false);
    await page.getByRole("button", { name: "Read-only" }).click();
    await row(page, s.id)
      .getByRole("button", { name: /^Remove/ })
      .click();
    await row(page, s.id).waitFor({ state: "detached", timeout: 2000 });
  });

  it("marks a full table as full", async () => {
    const d = await daemon();
    const c = d.client();
    await c.createTable({ table: "small", maxSessions: 2 });
    await page.goto(`${d.url}#small`);
    await tableButton(page, "small").locator(".count", { hasText: "0 / 2" }).waitFor({ timeout: 5000 });
    expect(await tableButton(page, "small").getAttribute("class")).to.not.include("full");
    await c.register({ projectPath: "/a" }, { table: "small" });
    await c.register({ projectPath: "/b" }, { table: "small" });
    await tableButton(page, "small").locator(".count", { hasText: "2 / 2 full" }).waitFor({ timeout: 2000 });
    expect(await tableButton(page, "small").getAttribute("class")).to.include("full");
    expect(await page.locator("#table-info").textContent()).to.match(/^2 \/ 2 full/);
  });

  it("after a restart of a memory daemon (a new history) shows exactly the new daemon's sessions", async () => {
    const first = await daemon();
    const c1 = first.client();
    const old = [await c1.register({ projectPath: "/old/a" }), await c1.register({ projectPath: "/old/b" })];
    await page.goto(first.url);
    await row(page, old[1]!.id).waitFor({ timeout: 5000 });
    const grpcAddress = first.daemon.address;
    const httpAddress = new URL(first.url).host;
    await first.stop();
    daemons.splice(daemons.indexOf(first), 1);
    await page.locator("#status", { hasText: "disconnected" }).waitFor({ timeout: 5000 });

    // The new history gets past the old revision, so a resume that ignored table_uid would be taken for one in it.
    const second = await daemon({ listen: grpcAddress, httpListen: httpAddress });
    const c2 = second.client();
    const fresh = [];
    for (const p of ["/new/c", "/new/d", "/new/e"]) fresh.push(await c2.register({ projectPath: p }));
    await page.locator("#status", { hasText: "live" }).waitFor({ timeout: 10_000 });
    await row(page, fresh[2]!.id).waitFor({ timeout: 5000 });
    expect(await sessionIds(page)).to.deep.equal(fresh.map((s) => s.id));
  });

  it("is usable by keyboard alone: Tab reaches the tables, Enter opens one, and editing and Remove work from the keys", async () => {
    const d = await daemon();
    const c = d.client();
    await c.createTable({ table: "keys", maxSessions: 2 });
    const s = await c.register({ projectPath: "/k" }, { table: "keys" });
    await page.goto(d.url);
    await tableButton(page, "keys").waitFor({ timeout: 5000 });
    const focused = () => page.evaluate<string>("document.activeElement?.dataset?.table ?? document.activeElement?.id ?? ''");
    // Header buttons first (Read-only), then the tables in order.
    for (let i = 0; i < 10 && (await focused()) !== "keys"; i++) await page.keyboard.press("Tab");
    expect(await focused()).to.equal("keys");
    await page.keyboard.press("Enter");
    await row(page, s.id).waitFor({ timeout: 5000 });
    expect(await page.locator("#sessions-heading").textContent()).to.equal("Sessions of keys");
    // The edit toggle by keyboard, then the row's Remove.
    await page.locator("#edit").focus();
    await page.keyboard.press("Enter");
    expect(await page.locator("#edit").getAttribute("aria-pressed")).to.equal("true");
    await row(page, s.id)
      .getByRole("button", { name: /^Remove/ })
      .focus();
    await page.keyboard.press("Enter");
    await row(page, s.id).waitFor({ state: "detached", timeout: 2000 });
  });

  for (const scheme of ["light", "dark"] as const) {
    it(`is readable in ${scheme}: text, muted text and a full table's count keep a 4.5:1 contrast on their background`, async () => {
      const d = await daemon();
      const c = d.client();
      await c.createTable({ table: "tiny", maxSessions: 1 });
      await c.register({ projectPath: "/t" }, { table: "tiny" });
      await page.emulateMedia({ colorScheme: scheme });
      await page.goto(`${d.url}#tiny`);
      await tableButton(page, "tiny").locator(".count", { hasText: "full" }).waitFor({ timeout: 5000 });
      // Colors as the browser computed them, each against the nearest ancestor's opaque background.
      const pairs = await page.evaluate<[string, string, string][]>(`(() => {
        const bg = (e) => { for (; e; e = e.parentElement) { const c = getComputedStyle(e).backgroundColor; if (!c.endsWith(", 0)") && c !== "transparent") return c; } return "rgb(255, 255, 255)"; };
        return ["body", "#server", "#table-info", "button.table.full .count", "#sessions td.name", "#status"].map((sel) => {
          const e = document.querySelector(sel);
          return [sel, getComputedStyle(e).color, bg(e)];
        });
      })()`);
      const body = pairs[0]![2];
      // Light and dark really differ.
      expect(body, "the page's background").to.equal(scheme === "dark" ? "rgb(23, 25, 28)" : "rgb(247, 247, 245)");
      for (const [selector, fg, bg] of pairs) expect(contrast(fg, bg), `${selector}: ${fg} on ${bg}`).to.be.at.least(4.5);
    });
  }

  describe("with tokens", () => {
    const TOKENS = { read: "page-reader-0123456789abcdef", write: "page-writer-0123456789abcdef" };
    let dir: string;

    before(() => {
      dir = mkdtempSync(join(tmpdir(), "page-tokens-"));
      writeFileSync(join(dir, "tokens"), `read ${TOKENS.read}\nwrite ${TOKENS.write}\n`);
    });

    after(() => {
      rmSync(dir, { recursive: true, force: true });
    });

    it("asks for a token, keeps it in the tab's session storage, and shows a read token's Remove refused", async () => {
      const d = await daemon({ authTokensFile: join(dir, "tokens") });
      const s = await d.client(TOKENS.write).register({ projectPath: "/tmp/guarded" });
      await page.goto(d.url);
      const dialog = page.getByRole("dialog", { name: "Token required" });
      await dialog.waitFor({ timeout: 5000 });
      await dialog.getByLabel("Token").fill(TOKENS.read);
      await dialog.getByRole("button", { name: "Use token" }).click();
      await row(page, s.id).waitFor({ timeout: 5000 });
      // Run in the page, where the storages are (the test's types know no DOM).
      expect(await page.evaluate("[sessionStorage.length, localStorage.length]")).to.deep.equal([1, 0]);

      await page.getByRole("button", { name: "Read-only" }).click();
      await row(page, s.id)
        .getByRole("button", { name: /^Remove/ })
        .click();
      await page.locator("#notice", { hasText: "PERMISSION_DENIED" }).waitFor({ timeout: 2000 });
      expect(await page.locator("#notice").textContent()).to.include("write role");
      expect(await row(page, s.id).count()).to.equal(1);
    });
  });
});
