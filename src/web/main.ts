/**
 * The live page: the tables with their counts against their limits, kept
 * live by a TablesFeed (WatchTables), and the chosen table's sessions kept
 * live by a TableFeed (Watch).
 * Read-only unless the user turns on editing; with tokens configured, it asks
 * for one and keeps it in this tab's session storage.
 */
import type { Session, Table } from "../gen/sessionregistry/v1/session_registry_pb.js";
import { registryClient, token } from "./client.js";
import { byId, h, setText } from "./dom.js";
import { Code, failure, type Failure } from "./failure.js";
import { TableFeed } from "./feed.js";
import { TablesFeed } from "./tables-feed.js";
import { countdown, duration, millis, shortUid } from "./format.js";

const client = registryClient(location.origin);

const ui = {
  server: byId("server", HTMLElement),
  status: byId("status", HTMLElement),
  edit: byId("edit", HTMLButtonElement),
  tokenButton: byId("token", HTMLButtonElement),
  tables: byId("tables", HTMLUListElement),
  tableInfo: byId("table-info", HTMLElement),
  heading: byId("sessions-heading", HTMLElement),
  notice: byId("notice", HTMLElement),
  sessions: byId("sessions", HTMLTableElement),
  empty: byId("empty", HTMLElement),
  dialog: byId("token-dialog", HTMLDialogElement),
  tokenForm: byId("token-form", HTMLFormElement),
  tokenInput: byId("token-input", HTMLInputElement),
  tokenError: byId("token-error", HTMLElement),
};
const tbody = ui.sessions.tBodies[0]!;

let tablesFeed: TablesFeed | undefined;
let feed: TableFeed | undefined;
let editing = false;
let authSeen = token.get() !== null;

// ---- tables ----

interface TableItem {
  li: HTMLLIElement;
  button: HTMLButtonElement;
  count: HTMLElement;
  bar: HTMLElement;
}
const tableItems = new Map<string, TableItem>();

/** (Re)starts the tables' feed, e.g. with a new token. */
function watchTables(): void {
  tablesFeed?.stop();
  tablesFeed = new TablesFeed(client, onTablesChange);
}

function onTablesChange(): void {
  const f = tablesFeed;
  if (f === undefined) return;
  if (f.state.kind === "stopped" && f.state.failure.code === Code.Unauthenticated) askToken();
  if (feed === undefined && f.state.kind === "live") {
    selectTable(tableFromHash() ?? (f.has("default") ? "default" : f.tables[0]?.name));
  }
  redraw();
}

/** The tables the page shows. */
function tables(): readonly Table[] {
  return tablesFeed?.tables ?? [];
}

/** The selected table's count comes from its session feed, the one drawn below; the others' from WatchTables. */
function countOf(t: Table): number {
  return feed?.table === t.name && feed.state.kind === "live" ? feed.sessions.size : t.sessionCount;
}

function renderTables(): void {
  const names = new Set(tables().map((t) => t.name));
  for (const [name, item] of tableItems) {
    if (!names.has(name)) {
      item.li.remove();
      tableItems.delete(name);
    }
  }
  let previous: HTMLLIElement | undefined;
  for (const t of tables()) {
    let item = tableItems.get(t.name);
    if (item === undefined) {
      const count = h("span", { class: "count" });
      const bar = h("span", { class: "fill" });
      const button = h(
        "button",
        { type: "button", class: "table", "data-table": t.name },
        h("span", { class: "name" }, t.name),
        count,
        h("span", { class: "bar", "aria-hidden": "true" }, bar),
      );
      button.addEventListener("click", () => {
        location.hash = `#${encodeURIComponent(t.name)}`;
      });
      item = { li: h("li", {}, button), button, count, bar };
      tableItems.set(t.name, item);
    }
    // Keep the list in the daemon's (name) order without rebuilding it, so focus stays where it is.
    const want = previous ? previous.nextSibling : ui.tables.firstChild;
    if (want !== item.li) ui.tables.insertBefore(item.li, want);
    previous = item.li;
    const n = countOf(t);
    const full = n >= t.maxSessions;
    item.button.classList.toggle("full", full);
    if (feed?.table === t.name) item.button.setAttribute("aria-current", "true");
    else item.button.removeAttribute("aria-current");
    setText(item.count, full ? `${n} / ${t.maxSessions} full` : `${n} / ${t.maxSessions}`);
    item.button.setAttribute("aria-label", `${t.name}: ${n} of ${t.maxSessions} sessions${full ? ", full" : ""}`);
    item.bar.style.width = `${Math.min(100, (100 * n) / Math.max(1, t.maxSessions))}%`;
  }
}

function tableFromHash(): string | undefined {
  const name = decodeURIComponent(location.hash.slice(1));
  return name === "" ? undefined : name;
}

// ---- sessions ----

interface Row {
  tr: HTMLTableRowElement;
  session: Session;
  age: HTMLElement;
  ttl: HTMLElement;
  /** When the session was last read again because its countdown ran out (epoch ms). */
  reread?: number;
}

/** How long a countdown stays at "expiring" before the session is read again: the daemon's expiry event comes first if it expired. */
const REREAD_AFTER_MS = 1000;
const rows = new Map<string, Row>();

function selectTable(name: string | undefined): void {
  feed?.stop();
  feed = undefined;
  for (const row of rows.values()) row.tr.remove();
  rows.clear();
  hideNotice();
  if (name === undefined) {
    renderSessions();
    return;
  }
  feed = new TableFeed(client, name, onFeedChange);
  renderTables();
  renderSessions();
}

let frame: number | undefined;

function onFeedChange(): void {
  if (feed?.state.kind === "stopped") {
    const f = feed.state.failure;
    if (f.code === Code.Unauthenticated) askToken();
    else if (f.code === Code.NotFound) showNotice(`Table ${feed.table} does not exist (any more).`);
    else showNotice(describe(f));
  }
  redraw();
}

/** Draws what changed once, at the next frame, however many messages came. */
function redraw(): void {
  frame ??= requestAnimationFrame(() => {
    frame = undefined;
    renderSessions();
    renderTables();
    renderStatus();
  });
}

function renderSessions(): void {
  const sessions = feed?.sessions ?? new Map<string, Session>();
  for (const [id, row] of rows) {
    if (!sessions.has(id)) {
      row.tr.remove();
      rows.delete(id);
    }
  }
  let previous: HTMLTableRowElement | undefined;
  for (const s of sessions.values()) {
    let row = rows.get(s.id);
    if (row?.session !== s) {
      const fresh = sessionRow(s);
      if (row === undefined) {
        row = fresh;
        rows.set(s.id, row);
      } else {
        // An update: the new row replaces the old in place, keeping focus on its Remove button.
        const hadFocus = row.tr.contains(document.activeElement);
        row.tr.replaceWith(fresh.tr);
        row = fresh;
        rows.set(s.id, row);
        if (hadFocus) row.tr.querySelector("button")?.focus();
      }
    }
    const want = previous ? previous.nextSibling : tbody.firstChild;
    if (want !== row.tr) tbody.insertBefore(row.tr, want);
    previous = row.tr;
  }
  const t = tables().find((x) => x.name === feed?.table);
  setText(ui.heading, feed ? `Sessions of ${feed.table}` : "Sessions");
  const parts: string[] = [];
  if (feed !== undefined) {
    const max = t?.maxSessions;
    parts.push(max === undefined ? `${sessions.size}` : `${sessions.size} / ${max}${sessions.size >= max ? " full" : ""}`);
    if (feed.revision > 0n) parts.push(`revision ${feed.revision}`, `history ${shortUid(feed.tableUid)}`);
  }
  setText(ui.tableInfo, parts.join(" · "));
  ui.sessions.classList.toggle("stale", feed?.state.kind !== "live");
  ui.empty.hidden = sessions.size > 0 || feed?.state.kind !== "live";
  tick();
}

function sessionRow(s: Session): Row {
  const age = h("td", { class: "num" });
  const expires = millis(s.expireTime);
  const ttl = h("td", {
    class: "num",
    title:
      expires === undefined
        ? "no ttl: never expires"
        : `ttl ${duration(Number(s.ttl?.seconds ?? 0n) * 1000)}; expires at ${new Date(expires).toLocaleTimeString()} unless kept alive`,
  });
  const meta = Object.entries(s.metadata).sort(([a], [b]) => (a < b ? -1 : 1));
  const remove = h("button", { type: "button", class: "remove", "aria-label": `Remove ${s.name} (${s.id})` }, "Remove");
  remove.addEventListener("click", () => void removeSession(s, remove));
  const tr = h(
    "tr",
    { "data-id": s.id },
    h("td", { class: "name" }, s.name),
    h("td", { class: "mono id", title: s.id }, s.id),
    h("td", { class: "mono path", title: s.projectPath }, s.projectPath),
    age,
    ttl,
    h(
      "td",
      { class: "meta" },
      ...meta.map(([k, v]) => h("span", { class: "chip", title: `${k}=${v}` }, h("span", { class: "key" }, k), `=${v}`)),
    ),
    h("td", { class: "actions" }, remove),
  );
  return { tr, session: s, age, ttl };
}

async function removeSession(s: Session, button: HTMLButtonElement): Promise<void> {
  if (feed === undefined) return;
  button.disabled = true;
  try {
    await client.remove({ table: feed.table, id: s.id, expectedRevision: s.revision, tableUid: s.tableUid });
    hideNotice();
  } catch (err) {
    const f = failure(err);
    if (f.code === Code.Unauthenticated) askToken();
    showNotice(
      f.code === Code.PermissionDenied
        ? `Not removed: this token may not remove sessions from ${feed.table} (it needs the write role). PERMISSION_DENIED`
        : `Not removed: ${describe(f)}`,
    );
    button.disabled = false;
  }
}

// ---- the clock: ages, ttl countdowns, the retry countdown ----

function tick(): void {
  const now = Date.now();
  for (const row of rows.values()) {
    const created = millis(row.session.createTime);
    setText(row.age, created === undefined ? "" : duration(now - created));
    const expires = millis(row.session.expireTime);
    if (expires === undefined) {
      setText(row.ttl, "—");
    } else {
      const left = expires - now;
      setText(row.ttl, left > 0 ? countdown(left) : "expiring");
      row.ttl.classList.toggle("soon", left < 10_000);
      if (left < -REREAD_AFTER_MS && now - (row.reread ?? 0) > REREAD_AFTER_MS) {
        row.reread = now;
        void reread(row.session);
      }
    }
  }
  renderStatus();
}

/** A session whose countdown ran out without an expiry event was kept alive (KeepAlive sends none): read its expire_time again. */
async function reread(s: Session): Promise<void> {
  const f = feed;
  if (f === undefined) return;
  try {
    const res = await client.lookup({ table: f.table, key: { case: "id", value: s.id } });
    if (res.session !== undefined && feed === f) f.refresh(res.session);
  } catch {
    // NOT_FOUND: it did expire, and the stream's EXPIRED event removes it.
  }
}

// ---- status, notices, editing, token ----

function renderStatus(): void {
  const state = feed?.state;
  const listed = tablesFeed?.state;
  const needsToken = (s: typeof state) => s?.kind === "stopped" && s.failure.code === Code.Unauthenticated;
  const down = state?.kind === "disconnected" ? state : listed?.kind === "disconnected" ? listed : undefined;
  let text: string;
  let kind: string;
  if (needsToken(listed) || needsToken(state)) {
    text = "token needed";
    kind = "warn";
  } else if (down !== undefined) {
    text = `disconnected · retrying in ${Math.max(0, Math.ceil((down.retryAt - Date.now()) / 1000))}s`;
    kind = "down";
  } else if (listed?.kind === "connecting" && state === undefined) {
    text = "connecting…";
    kind = "warn";
  } else if (state === undefined || state.kind === "live") {
    text = "live";
    kind = "live";
  } else if (state.kind === "connecting") {
    text = "connecting…";
    kind = "warn";
  } else {
    text = "stopped";
    kind = "warn";
  }
  setText(ui.status, text);
  ui.status.dataset.state = kind;
}

function describe(f: Failure): string {
  return f.reason === "" ? f.message : `${f.message} (${f.reason})`;
}

function showNotice(text: string): void {
  setText(ui.notice, text);
  ui.notice.hidden = false;
}

function hideNotice(): void {
  ui.notice.hidden = true;
}

function setEditing(on: boolean): void {
  editing = on;
  ui.edit.setAttribute("aria-pressed", String(on));
  setText(ui.edit, on ? "Editing" : "Read-only");
  ui.sessions.classList.toggle("editing", on);
}

function askToken(): void {
  const refused = token.get() !== null;
  authSeen = true;
  ui.tokenButton.hidden = false;
  if (ui.dialog.open) return;
  ui.tokenError.hidden = !refused;
  setText(ui.tokenError, refused ? "The daemon refused that token." : "");
  ui.tokenInput.value = "";
  ui.dialog.showModal();
}

ui.tokenForm.addEventListener("submit", () => {
  const value = ui.tokenInput.value.trim();
  if (value === "") return;
  token.set(value);
  // The dialog closes itself (method="dialog"); restart what the missing token stopped.
  const name = feed?.table ?? tableFromHash();
  feed = undefined;
  selectTable(name);
  watchTables();
  void showServer();
});

ui.tokenButton.addEventListener("click", () => {
  token.clear();
  askToken();
});

ui.edit.addEventListener("click", () => {
  setEditing(!editing);
});

window.addEventListener("hashchange", () => {
  const name = tableFromHash();
  if (name !== undefined && name !== feed?.table) selectTable(name);
});

// Back online or back to the tab: do not wait for the backoff.
window.addEventListener("online", () => {
  feed?.retryNow();
  tablesFeed?.retryNow();
});
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible") {
    feed?.retryNow();
    tablesFeed?.retryNow();
  }
});

async function showServer(): Promise<void> {
  try {
    const info = await client.getServerInfo({});
    setText(ui.server, `v${info.version} · ${info.store} store${info.storeAvailable ? "" : " (unavailable)"}`);
  } catch {
    // The header line is a nicety; the status pill already says what is wrong.
  }
}

ui.tokenButton.hidden = !authSeen;
setEditing(false);
const initial = tableFromHash();
if (initial !== undefined) selectTable(initial);
watchTables();
void showServer();
setInterval(tick, 1000);
