/**
 * The CLI's output forms (chosen in ./output.ts). JSON (`-w json`): camelCase
 * keys as in the SDK, metadata as an object, times as ISO 8601 strings, a ttl
 * as a duration in the largest unit that divides it exactly ("5m", "90s",
 * "1500ms", as --ttl takes it), absent values as null, so every object has
 * the same keys.
 * Text: aligned columns for lists, `key: value` lines for one object, with
 * control characters escaped so that server data cannot drive the terminal.
 */
import { eventTypeToJSON, type Duration, type Session, type Table, type WatchItem } from "@session-registry/client";

import { formatDuration } from "../args/index.js";

export interface SessionJson {
  id: string;
  name: string;
  projectPath: string;
  metadata: Record<string, string>;
  revision: number;
  ttl: string | null;
  expireTime: string | null;
  createTime: string | null;
  updateTime: string | null;
}

export interface TableJson {
  name: string;
  maxSessions: number;
  sessionCount: number;
  revision: number;
  /** The history `revision` belongs to. */
  tableUid: string;
  createTime: string | null;
}

export function sessionJson(s: Session): SessionJson {
  return {
    id: s.id,
    name: s.name,
    projectPath: s.projectPath,
    metadata: Object.fromEntries(s.metadata),
    revision: s.revision,
    ttl: s.ttl === undefined ? null : durationText(s.ttl),
    expireTime: isoOrNull(s.expireTime),
    createTime: isoOrNull(s.createTime),
    updateTime: isoOrNull(s.updateTime),
  };
}

export function tableJson(t: Table): TableJson {
  return {
    name: t.name,
    maxSessions: t.maxSessions,
    sessionCount: t.sessionCount,
    revision: t.revision,
    tableUid: t.tableUid,
    createTime: isoOrNull(t.createTime),
  };
}

export function watchItemJson(item: WatchItem): object {
  return item.kind === "snapshot"
    ? { kind: "snapshot", revision: item.revision, tableUid: item.tableUid, resync: item.resync, sessions: item.sessions.map(sessionJson) }
    : { kind: "event", revision: item.revision, tableUid: item.tableUid, type: eventName(item.type), session: sessionJson(item.session) };
}

/** EVENT_TYPE_REGISTERED -> REGISTERED. */
export function eventName(type: Parameters<typeof eventTypeToJSON>[0]): string {
  return eventTypeToJSON(type).replace(/^EVENT_TYPE_/, "");
}

/** A Duration the way it was given: a ttl of 300 s is "5m", not "300s". */
export function durationText(d: Duration): string {
  return formatDuration(d.seconds * 1000 + Math.round(d.nanos / 1_000_000));
}

function isoOrNull(date: Date | undefined): string | null {
  return date === undefined ? null : date.toISOString();
}

/** A time for people: ISO 8601 in UTC to the second. */
export function timeText(date: Date | undefined): string {
  return date === undefined ? "-" : date.toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Escapes control characters (newlines, ESC) so that one value stays on one line and cannot drive the terminal. */
export function clean(text: string): string {
  // eslint-disable-next-line no-control-regex -- matching control characters is what this regex is for
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

function labelsText(metadata: ReadonlyMap<string, string>): string {
  if (metadata.size === 0) return "-";
  return [...metadata]
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join(",");
}

/** Columns padded to their widest cell, two spaces apart; the last column is not padded. */
export function columns(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const all = [header, ...rows].map((row) => row.map(clean));
  const widths = header.map((_, i) => Math.max(...all.map((row) => (row[i] ?? "").length)));
  return all
    .map((row) =>
      row
        .map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join("  ")
        .trimEnd(),
    )
    .map((line) => `${line}\n`)
    .join("");
}

/** `key: value` lines with the values aligned. */
export function keyValues(pairs: readonly (readonly [string, string])[]): string {
  const width = Math.max(...pairs.map(([k]) => k.length)) + 2;
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(width)}${clean(v)}\n`).join("");
}

export function sessionText(s: Session): string {
  return keyValues([
    ["id", s.id],
    ["name", s.name],
    ["path", s.projectPath],
    ["metadata", labelsText(s.metadata)],
    ["revision", String(s.revision)],
    ["ttl", s.ttl === undefined ? "-" : durationText(s.ttl)],
    ["expires", timeText(s.expireTime)],
    ["created", timeText(s.createTime)],
    ["updated", timeText(s.updateTime)],
  ]);
}

/** `extra` rows go last, aligned with the rest. */
export function tableText(t: Table, extra: readonly (readonly [string, string])[] = []): string {
  return keyValues([
    ["name", t.name],
    ["max sessions", String(t.maxSessions)],
    ["sessions", String(t.sessionCount)],
    ["revision", String(t.revision)],
    ["created", timeText(t.createTime)],
    ...extra,
  ]);
}

export function sessionsText(sessions: readonly Session[]): string {
  return columns(
    ["ID", "NAME", "PATH", "REVISION", "TTL", "EXPIRES", "CREATED", "METADATA"],
    sessions.map((s) => [
      s.id,
      s.name,
      s.projectPath,
      String(s.revision),
      s.ttl === undefined ? "-" : durationText(s.ttl),
      timeText(s.expireTime),
      timeText(s.createTime),
      labelsText(s.metadata),
    ]),
  );
}

export function tablesText(tables: readonly Table[]): string {
  return columns(
    ["NAME", "SESSIONS", "MAX", "REVISION", "CREATED"],
    tables.map((t) => [t.name, String(t.sessionCount), String(t.maxSessions), String(t.revision), timeText(t.createTime)]),
  );
}

/** status's table list: what each table holds against its limit. */
export function statusTablesText(tables: readonly Table[]): string {
  return columns(
    ["TABLE", "SESSIONS", "MAX"],
    tables.map((t) => [t.name, String(t.sessionCount), String(t.maxSessions)]),
  );
}

/** A value in a `key=value` watch line: quoted (JSON) when it has spaces, quotes or is empty; the first "=" ends the key. */
function field(key: string, value: string): string {
  return `${key}=${value === "" || /[\s"\\]/.test(value) ? JSON.stringify(value) : clean(value)}`;
}

function sessionFields(s: Session): string {
  const parts = [field("id", s.id), field("name", s.name), field("path", s.projectPath), `revision=${s.revision}`];
  if (s.metadata.size > 0) parts.push(field("metadata", labelsText(s.metadata)));
  if (s.expireTime !== undefined) parts.push(`expires=${timeText(s.expireTime)}`);
  return parts.join(" ");
}

/**
 * The lines of one watch item: a snapshot is a `SNAPSHOT` line then one
 * `SESSION` line per session; an event is one line named after its type.
 * Every line starts with the revision, so each stands on its own.
 */
export function watchItemLines(item: WatchItem): string {
  if (item.kind === "snapshot") {
    const head = `rev=${item.revision} SNAPSHOT sessions=${item.sessions.length}${item.resync ? " resync=true" : ""}\n`;
    return head + item.sessions.map((s) => `rev=${item.revision} SESSION ${sessionFields(s)}\n`).join("");
  }
  return `rev=${item.revision} ${eventName(item.type)} ${sessionFields(item.session)}\n`;
}
