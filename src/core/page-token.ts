/**
 * List page tokens. Opaque to clients: base64url of a small JSON object that
 * binds the store's cursor to the table it came from, so a token passed to
 * another table's List is rejected instead of silently paging the wrong table.
 */
const VERSION = 1;
const MAX_TOKEN_CHARS = 1024;

export function encodePageToken(table: string, cursor: string): string {
  return Buffer.from(JSON.stringify({ v: VERSION, t: table, c: cursor }), "utf8").toString("base64url");
}

/** The store cursor in a token, or undefined when the token is malformed or belongs to another table. */
export function decodePageToken(token: string, table: string): string | undefined {
  if (token.length > MAX_TOKEN_CHARS || !/^[A-Za-z0-9_-]+$/.test(token)) return undefined;
  try {
    const parsed: unknown = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
    if (typeof parsed !== "object" || parsed === null) return undefined;
    const { v, t, c } = parsed as Record<string, unknown>;
    if (v !== VERSION || t !== table || typeof c !== "string") return undefined;
    return c;
  } catch {
    return undefined;
  }
}
