/**
 * List page tokens. Opaque to clients: base64url of a small JSON object that
 * binds the store's cursor to the table and the table history it came from,
 * so a token passed to another table's List is rejected, and one from an
 * earlier history of the same table (a restarted memory daemon, a table made
 * again) is refused as TABLE_UID_MISMATCH, instead of silently paging
 * through sessions it never described.
 */
import { invalidArgument, type RegistryError } from "./errors.js";

const VERSION = 2;
/** Tokens of the previous version carry no table_uid; still accepted, so that a rolling upgrade does not break a listing. */
const VERSION_WITHOUT_UID = 1;
const MAX_TOKEN_CHARS = 1024;

export interface PageToken {
  cursor: string;
  /** The history the cursor belongs to; undefined in a token of the previous version. */
  tableUid: string | undefined;
}

export function encodePageToken(table: string, tableUid: string, cursor: string): string {
  return Buffer.from(JSON.stringify({ v: VERSION, t: table, u: tableUid, c: cursor }), "utf8").toString("base64url");
}

/** The token's cursor and history, or undefined when the token is malformed or belongs to another table. */
export function decodePageToken(token: string, table: string): PageToken | undefined {
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const { v, t, u, c } = parsed as Record<string, unknown>;
    if (t !== table || typeof c !== "string") return undefined;
    if (v === VERSION && typeof u === "string") return { cursor: c, tableUid: u };
    if (v === VERSION_WITHOUT_UID) return { cursor: c, tableUid: undefined };
    return undefined;
  } catch {
    return undefined;
  }
}

/**
 * Both stores page in create-revision order, so a store's cursor is the
 * create revision of the last session a page holds.
 */
export function revisionCursor(createRevision: number): string {
  return String(createRevision);
}

/** The create revision a cursor names, or undefined when it names none. */
export function parseRevisionCursor(cursor: string): number | undefined {
  const revision = Number(cursor);
  return /^\d+$/.test(cursor) && Number.isSafeInteger(revision) ? revision : undefined;
}

/** A page token whose cursor no store made. */
export function badPageToken(): RegistryError {
  return invalidArgument([{ field: "page_token", description: "is not a page token of this table's List" }]);
}
