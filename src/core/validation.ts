/**
 * Field rules of the v1 contract: what is valid, and how valid input is
 * normalized. Each rule lives here once; checks add a FieldViolation to a
 * collector so that one INVALID_ARGUMENT names every bad field of a request.
 */
import { invalidArgument, quote, type FieldViolation } from "./errors.js";
import type { Duration } from "./model.js";

export const LIMITS = {
  tableNameMaxChars: 63,
  idMaxChars: 128,
  nameMaxCodePoints: 50,
  projectPathMaxBytes: 4096,
  metadataMaxEntries: 64,
  metadataKeyMaxBytes: 128,
  metadataValueMaxBytes: 4096,
  /** Keys and values together: a session's memory (and every event and watch message that carries it) stays small. */
  metadataMaxTotalBytes: 16384,
  /** Paths in one update_mask: the four updatable fields, with room for repeats. Checked before any path is looked at. */
  updateMaskMaxPaths: 8,
  ttlMinNanos: 1_000_000_000n,
  ttlMaxNanos: 24n * 3600n * 1_000_000_000n,
  maxSessionsMax: 1_000_000,
  pageSizeDefault: 100,
  pageSizeMax: 1000,
} as const;

const TABLE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const SESSION_ID = /^[A-Za-z0-9._:-]+$/;
const CONTROL_CHAR = /\p{Cc}/u;
/** Control characters other than tab, newline and carriage return, which multi-line or JSON-ish metadata values may hold. */
const CONTROL_CHAR_BUT_WHITESPACE = /(?![\t\n\r])\p{Cc}/u;
/**
 * Bidirectional marks, embeddings, overrides and isolates: invisible, they
 * make one path display as another (U+202E turns "/a/txt.exe" around).
 */
const BIDI_CONTROL = /[\u200E\u200F\u202A-\u202E\u2066-\u2069]/u;

/** Collects the violations of one request; `throwIfAny` raises them as one INVALID_ARGUMENT. */
export class Violations {
  readonly list: FieldViolation[] = [];
  add(field: string, description: string): void {
    this.list.push({ field, description });
  }
  throwIfAny(): void {
    if (this.list.length > 0) throw invalidArgument(this.list);
  }
  /** Adds a violation that makes the rest of the request uncheckable, and throws them all. */
  fail(field: string, description: string): never {
    this.add(field, description);
    throw invalidArgument(this.list);
  }
}

function byteLength(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

function codePointLength(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** A table name; "" means the default table and is resolved by the caller before this check. */
export function checkTableName(v: Violations, field: string, table: string): void {
  if (table.length > LIMITS.tableNameMaxChars) {
    v.add(field, `must be at most ${LIMITS.tableNameMaxChars} characters, got ${table.length}`);
  } else if (!TABLE_NAME.test(table)) {
    v.add(field, `must be 1-${LIMITS.tableNameMaxChars} characters of [A-Za-z0-9._-] starting with a letter or digit, got ${quote(table)}`);
  }
}

export function checkSessionId(v: Violations, field: string, id: string): void {
  if (id.length === 0) {
    v.add(field, "is required");
  } else if (id.length > LIMITS.idMaxChars) {
    v.add(field, `must be at most ${LIMITS.idMaxChars} characters, got ${id.length}`);
  } else if (!SESSION_ID.test(id)) {
    v.add(field, `must contain only [A-Za-z0-9._:-], got ${quote(id)}`);
  }
}

/** A Register's optional idempotency key: empty (none) or like a session id (1-128 of [A-Za-z0-9._:-]). */
export function checkRequestId(v: Violations, field: string, requestId: string): void {
  checkOptionalKey(v, field, requestId);
}

/** A table_uid a client sends back: what the daemon hands out fits a session id's format; empty means none. */
export function checkTableUid(v: Violations, field: string, tableUid: string): void {
  checkOptionalKey(v, field, tableUid);
}

function checkOptionalKey(v: Violations, field: string, key: string): void {
  if (key === "") return;
  if (key.length > LIMITS.idMaxChars) {
    v.add(field, `must be at most ${LIMITS.idMaxChars} characters, got ${key.length}`);
  } else if (!SESSION_ID.test(key)) {
    v.add(field, `must contain only [A-Za-z0-9._:-], got ${quote(key)}`);
  }
}

export function checkName(v: Violations, field: string, name: string): void {
  const n = codePointLength(name);
  if (n === 0) {
    v.add(field, "must not be empty");
  } else if (n > LIMITS.nameMaxCodePoints) {
    v.add(field, `must be at most ${LIMITS.nameMaxCodePoints} characters (code points), got ${n}`);
  } else if (CONTROL_CHAR.test(name)) {
    v.add(field, "must not contain control characters");
  }
}

/**
 * Checks a project path as sent and returns its normalized form, or undefined
 * when it is invalid (a violation was added).
 */
export function checkProjectPath(v: Violations, field: string, path: string): string | undefined {
  if (path.length === 0) {
    v.add(field, "is required");
    return undefined;
  }
  const bytes = byteLength(path);
  if (bytes > LIMITS.projectPathMaxBytes) {
    v.add(field, `must be at most ${LIMITS.projectPathMaxBytes} bytes, got ${bytes}`);
    return undefined;
  }
  if (!path.startsWith("/")) {
    v.add(field, `must be an absolute POSIX path (start with "/"), got ${quote(path)}`);
    return undefined;
  }
  if (CONTROL_CHAR.test(path)) {
    v.add(field, "must not contain control characters (NUL, tab, newline, ...)");
    return undefined;
  }
  if (BIDI_CONTROL.test(path)) {
    v.add(field, "must not contain bidirectional formatting characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)");
    return undefined;
  }
  // Most paths arrive normalized: no empty, "." or ".." segment, no trailing slash. Keep those as they are.
  if (!NEEDS_NORMALIZING.test(path)) return path;
  const segments = path.split("/").filter((s) => s !== "" && s !== ".");
  if (segments.includes("..")) {
    v.add(field, `must not contain a ".." segment, got ${quote(path)}`);
    return undefined;
  }
  return normalizeSegments(segments);
}

/** An empty segment ("//"), a "." or ".." segment, or a trailing slash after something. */
const NEEDS_NORMALIZING = /\/\/|\/\.\.?(?:\/|$)|.\/$/;

function normalizeSegments(segments: string[]): string {
  return "/" + segments.join("/");
}

/**
 * The name a session gets when it has none: the last segment of its
 * (normalized) project path, cut to 50 code points; `/` for the root. A valid
 * path has no control characters, so the segment is a valid name.
 */
export function deriveName(normalizedPath: string): string {
  const last = normalizedPath.slice(normalizedPath.lastIndexOf("/") + 1);
  if (last === "") return "/";
  // Short enough in UTF-16 units is short enough in code points: no need to split it into them.
  if (last.length <= LIMITS.nameMaxCodePoints) return last;
  return Array.from(last).slice(0, LIMITS.nameMaxCodePoints).join(""); // code points, as the limit counts them
}

export function checkMetadata(v: Violations, field: string, metadata: ReadonlyMap<string, string>): void {
  if (metadata.size > LIMITS.metadataMaxEntries) {
    v.add(field, `must have at most ${LIMITS.metadataMaxEntries} entries, got ${metadata.size}`);
    return;
  }
  let total = 0;
  for (const [key, value] of metadata) {
    const kb = byteLength(key);
    if (kb === 0) {
      v.add(field, "keys must not be empty");
    } else if (kb > LIMITS.metadataKeyMaxBytes) {
      v.add(field, `key ${quote(key)} is ${kb} bytes; keys must be at most ${LIMITS.metadataKeyMaxBytes} bytes`);
    } else if (CONTROL_CHAR.test(key)) {
      v.add(field, `key ${quote(key)} contains a control character; keys must have none`);
    }
    const vb = byteLength(value);
    if (vb > LIMITS.metadataValueMaxBytes) {
      v.add(field, `value of key ${quote(key)} is ${vb} bytes; values must be at most ${LIMITS.metadataValueMaxBytes} bytes`);
    } else if (CONTROL_CHAR_BUT_WHITESPACE.test(value)) {
      v.add(field, `value of key ${quote(key)} contains a control character; values may hold tab, newline and carriage return, no other`);
    }
    total += kb + vb;
  }
  if (total > LIMITS.metadataMaxTotalBytes) {
    v.add(field, `keys and values total ${total} bytes; together they must be at most ${LIMITS.metadataMaxTotalBytes} bytes`);
  }
}

/**
 * A 64-bit integer as decoded from the wire: the daemon decodes them as
 * bigint so that any value a client sends reaches validation intact.
 */
export type WireInt = number | bigint;

/** A google.protobuf.Duration as decoded from the wire. */
export interface WireDuration {
  seconds: WireInt;
  nanos: number;
}

/** Checks a ttl and returns it normalized: undefined for unset or zero. */
export function checkTtl(v: Violations, field: string, ttl: WireDuration | undefined): Duration | undefined {
  if (ttl === undefined) return undefined;
  const seconds = BigInt(ttl.seconds);
  const nanos = ttl.nanos;
  if (!Number.isInteger(nanos) || nanos <= -1e9 || nanos >= 1e9 || (seconds > 0n && nanos < 0) || (seconds < 0n && nanos > 0)) {
    v.add(field, "is not a valid google.protobuf.Duration (nanos out of range or of the other sign)");
    return undefined;
  }
  const total = seconds * 1_000_000_000n + BigInt(nanos);
  if (total === 0n) return undefined;
  if (total < LIMITS.ttlMinNanos || total > LIMITS.ttlMaxNanos) {
    v.add(field, `must be 0 (never expires) or from 1s to 24h, got ${formatDuration(seconds, nanos)}`);
    return undefined;
  }
  return { seconds: Number(seconds), nanos };
}

/** An expected revision: 0 (unconditional) or a revision, which never exceeds 2^53 - 1. */
export function checkRevision(v: Violations, field: string, revision: WireInt): number {
  if (BigInt(revision) > BigInt(Number.MAX_SAFE_INTEGER) || BigInt(revision) < 0n) {
    v.add(field, `must be 0 or a revision the server issued (at most ${Number.MAX_SAFE_INTEGER}), got ${revision}`);
    return 0;
  }
  return Number(revision);
}

export function ttlMillis(ttl: Duration): number {
  return ttl.seconds * 1000 + Math.floor(ttl.nanos / 1e6);
}

function formatDuration(seconds: bigint, nanos: number): string {
  if (seconds > 86_400_000n || seconds < -86_400_000n) return `${seconds}s`;
  const text = (Number(seconds) + nanos / 1e9).toFixed(9).replace(/\.?0+$/, "");
  return `${text}s`;
}

/** A table's session limit; 0 (use the default) is resolved by the caller. */
export function checkMaxSessions(v: Violations, field: string, max: number): void {
  if (!Number.isInteger(max) || max < 0 || max > LIMITS.maxSessionsMax) {
    v.add(field, `must be from 1 to ${LIMITS.maxSessionsMax} (or 0 for the daemon's default), got ${max}`);
  }
}

/** Resolves a List page size: 0 means the default; above the maximum is capped. */
export function checkPageSize(v: Violations, field: string, size: number): number {
  if (!Number.isInteger(size) || size < 0) {
    v.add(field, `must not be negative, got ${size}`);
    return LIMITS.pageSizeDefault;
  }
  if (size === 0) return LIMITS.pageSizeDefault;
  return Math.min(size, LIMITS.pageSizeMax);
}
