/**
 * Bearer-token auth for SessionRegistry (`--auth-tokens FILE`).
 *
 * The file holds one grant per line, `ROLE TOKEN [TABLE ...]`:
 *
 *     # role   token                              tables (none: every table)
 *     admin    3f7c0e1a9b2d4c6e8f0a1b2c3d4e5f60
 *     write    hook-5d1e7a2b9c3f4e6a8b0c1d2e3f4a   default agents
 *     read     dash-0a1b2c3d4e5f60718293a4b5c6d7
 *
 * Roles nest: `read` may call GetTable, ListTables, Lookup, List, Watch,
 * WatchTables and GetServerInfo;
 * `write` also Register, Update, Remove and KeepAlive; `admin` also
 * CreateTable and DeleteTable. Tables, when given, restrict a token to them
 * (a request's empty table is `default`). ListTables and WatchTables stay
 * allowed to a restricted token and show its tables only.
 *
 * A call is checked in this order, before its request is validated: a token
 * must be present and known (else UNAUTHENTICATED), its role must cover the
 * method, and its tables the request's table (else PERMISSION_DENIED). The
 * first two are checked at the headers, before the request is read
 * (./call-guard.ts); the table, which is in the request, by the handler
 * (./service.ts). A request whose bytes do not parse has no table to check;
 * it is refused as INVALID_ARGUMENT by the handler, having touched nothing.
 *
 * Node's HTTP/2 layer keeps the first of several `authorization` headers and
 * drops the rest before grpc-js builds the call's metadata, so a second value
 * cannot be seen here; the check for one guards metadata built otherwise.
 *
 * Tokens are compared in constant time: the presented token and every
 * configured one are SHA-256 digests of equal length, and each call compares
 * against all of them, so neither the length nor the position of a match
 * shows in the timing. No error message, log line or metric carries a token,
 * and a bad file's errors name line and field numbers, never their text (a
 * token written in the wrong column must not end up in a log).
 */
import { createHash, timingSafeEqual } from "node:crypto";
import { readFile } from "node:fs/promises";

import { permissionDenied, unauthenticated } from "../core/errors.js";
import { checkTableName, Violations } from "../core/validation.js";
import { clipForLog } from "./log-fields.js";

export type Role = "read" | "write" | "admin";

export const ROLES: readonly Role[] = ["read", "write", "admin"];

/** The methods of SessionRegistry, as named in the proto. */
export type RpcMethod =
  | "CreateTable"
  | "GetTable"
  | "ListTables"
  | "DeleteTable"
  | "Register"
  | "Lookup"
  | "List"
  | "Update"
  | "Remove"
  | "Watch"
  | "WatchTables"
  | "KeepAlive"
  | "GetServerInfo";

/** The least role each method needs. */
export const REQUIRED_ROLE: Readonly<Record<RpcMethod, Role>> = {
  GetTable: "read",
  ListTables: "read",
  Lookup: "read",
  List: "read",
  Watch: "read",
  WatchTables: "read",
  GetServerInfo: "read",
  Register: "write",
  Update: "write",
  Remove: "write",
  KeepAlive: "write",
  CreateTable: "admin",
  DeleteTable: "admin",
};

/** Server-streaming methods: their calls are not timed (a stream's length is the client's). */
export function isStreaming(method: RpcMethod): boolean {
  return method === "Watch" || method === "WatchTables";
}

const RANK: Readonly<Record<Role, number>> = { read: 0, write: 1, admin: 2 };

/** Shorter tokens are refused: 16 characters of a random alphabet are well out of guessing range. */
export const MIN_TOKEN_LENGTH = 16;
/** gRPC metadata is small (8 KiB by default); a longer token could never be sent. */
export const MAX_TOKEN_LENGTH = 4096;
/** RFC 6750's b64token: what may follow "Bearer " without quoting. */
const TOKEN_CHARS = /^[A-Za-z0-9\-._~+/]+=*$/;
const BEARER = /^bearer +([^ ]+) *$/i;

/** A bad auth tokens file; the message names the file and the offending lines, never a token. */
export class AuthConfigError extends Error {
  override readonly name = "AuthConfigError";
}

/**
 * How many problems an AuthConfigError lists before "and N more": enough to
 * fix a file in one pass, short enough for one log line when a whole file is
 * in the wrong format.
 */
export const MAX_LISTED_PROBLEMS = 20;

/** One problem of a tokens file; `line` orders problems found by different checks. */
interface Problem {
  readonly line: number;
  readonly text: string;
}

/** One line of the file. */
export interface Grant {
  role: Role;
  token: string;
  /** Absent or empty: every table. */
  tables?: readonly string[];
  /** The line it came from, for error messages and logs. */
  line?: number;
}

/**
 * Where a call's headers are read from: grpc-js's Metadata is one; the HTTP
 * transport adapts node's request headers. `get` returns every value of a key.
 */
export interface HeaderSource {
  get(key: string): readonly unknown[];
}

/** Who a call is, once its token is known: what the token may do, and where it came from. */
export interface Principal {
  readonly role: Role;
  /** undefined: every table. */
  readonly tables: ReadonlySet<string> | undefined;
  /** The grant's line in the file; logs name a token by it. */
  readonly line: number;
}

interface Entry {
  readonly digest: Buffer;
  readonly principal: Principal;
}

export class Authorizer {
  private readonly entries: readonly Entry[];

  /**
   * Checks every grant (role, token length and alphabet, table names, no
   * token twice) and throws one AuthConfigError listing every problem.
   * `source` (e.g. the file's path) prefixes the message.
   */
  constructor(grants: readonly Grant[], source = "auth tokens") {
    const { entries, problems } = checkGrants(grants);
    if (problems.length === 0 && entries.length === 0) {
      problems.push({ line: 0, text: "no tokens; every call would be refused (remove --auth-tokens to run without auth)" });
    }
    if (problems.length > 0) throw refusal(source, problems);
    this.entries = entries;
  }

  /** How many tokens are configured. */
  get size(): number {
    return this.entries.length;
  }

  /**
   * The principal of the call's `authorization: Bearer <token>` header.
   * Throws UNAUTHENTICATED when it is missing, malformed or unknown.
   */
  authenticate(headers: HeaderSource): Principal {
    const values = headers.get("authorization");
    if (values.length === 0) throw unauthenticated("missing credentials");
    if (values.length > 1) throw unauthenticated("more than one authorization value");
    const value = values[0];
    const match = typeof value === "string" ? BEARER.exec(value) : null;
    if (match === null) throw unauthenticated('the authorization value is not "Bearer <token>"');

    const digest = sha256(match[1]!);
    let found: Principal | undefined;
    // Every entry, every time: stopping at a match would tell how far down the file a token is.
    for (const entry of this.entries) {
      const equal = timingSafeEqual(digest, entry.digest);
      found = equal ? entry.principal : found;
    }
    if (found === undefined) throw unauthenticated("unknown token");
    return found;
  }

  /**
   * Throws PERMISSION_DENIED unless `principal` may call `method` on `table`
   * (already resolved: `default` for an empty one). `table` is undefined for
   * ListTables and for a request that could not be decoded.
   */
  authorize(principal: Principal, method: RpcMethod, table: string | undefined): void {
    const needed = REQUIRED_ROLE[method];
    if (RANK[principal.role] < RANK[needed]) {
      throw permissionDenied(
        method,
        principal.role,
        clipForLog(table ?? ""),
        `${method} needs the ${needed} role; this token has ${principal.role}`,
      );
    }
    if (table !== undefined && !this.mayAccess(principal, table)) {
      throw permissionDenied(
        method,
        principal.role,
        clipForLog(table),
        `this token may not use table ${JSON.stringify(clipForLog(table))}`,
      );
    }
  }

  /** Whether `principal`'s tables include `table`. */
  mayAccess(principal: Principal, table: string): boolean {
    return principal.tables === undefined || principal.tables.has(table);
  }
}

/** Parses the file format (see the top of this file); `source` names the file in errors. */
export function parseAuthTokens(text: string, source = "auth tokens"): Authorizer {
  const grants: Grant[] = [];
  const problems: Problem[] = [];
  text
    .replace(/^\uFEFF/, "")
    .split(/\r?\n/)
    .forEach((raw, i) => {
      const line = i + 1;
      const fields: string[] = [];
      for (const field of raw.trim().split(/[ \t]+/)) {
        if (field === "") continue;
        if (field.startsWith("#")) break;
        fields.push(field);
      }
      if (fields.length === 0) return;
      const [role, token, ...tables] = fields;
      if (!(ROLES as readonly string[]).includes(role!)) {
        problems.push({ line, text: `line ${line}: the first field must be a role: ${ROLES.join(", ")}` });
        return;
      }
      if (token === undefined) {
        problems.push({ line, text: `line ${line}: a token must follow the role` });
        return;
      }
      grants.push({ role: role as Role, token, tables, line });
    });
  // The lines that did parse are checked too, so that one pass over the file reports all of it.
  if (problems.length > 0) throw refusal(source, [...problems, ...checkGrants(grants).problems]);
  return new Authorizer(grants, source);
}

/** Reads and parses an auth tokens file; throws AuthConfigError when it cannot be read or is bad. */
export async function loadAuthTokens(path: string): Promise<Authorizer> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "is a directory" : String(err);
    throw new AuthConfigError(`cannot read auth tokens file ${path}: ${why}`, { cause: err });
  }
  return parseAuthTokens(text, `auth tokens file ${path}`);
}

/** The grants that pass every check, and a problem for each one that does not. */
function checkGrants(grants: readonly Grant[]): { entries: Entry[]; problems: Problem[] } {
  const problems: Problem[] = [];
  const seen = new Map<string, number>();
  const entries: Entry[] = [];
  grants.forEach((grant, i) => {
    const line = grant.line ?? i + 1;
    const where = grant.line !== undefined ? `line ${line}` : `grant ${line}`;
    const before = problems.length;
    const problem = (text: string) => problems.push({ line, text: `${where}: ${text}` });
    if (!(ROLES as readonly string[]).includes(grant.role)) problem(`the role must be one of ${ROLES.join(", ")}`);
    const tokenProblem = checkToken(grant.token);
    if (tokenProblem !== undefined) problem(`the token ${tokenProblem}`);
    (grant.tables ?? []).forEach((table, j) => {
      const v = new Violations();
      checkTableName(v, "table", table);
      // Never the name itself: a token written one column too far would be echoed.
      if (v.list.length > 0) {
        problem(`field ${j + 3} is not a table name (1-63 characters of [A-Za-z0-9._-], starting with a letter or digit)`);
      }
    });
    if (problems.length > before) return;

    const digest = sha256(grant.token);
    const key = digest.toString("hex");
    const first = seen.get(key);
    if (first !== undefined) {
      problem(`the same token as line ${first}; give each token one line`);
      return;
    }
    seen.set(key, line);
    const tables = grant.tables !== undefined && grant.tables.length > 0 ? new Set(grant.tables) : undefined;
    entries.push({ digest, principal: Object.freeze({ role: grant.role, tables, line }) });
  });
  return { entries, problems };
}

/** One error for all of a file's problems, in line order, the first MAX_LISTED_PROBLEMS of them. */
function refusal(source: string, problems: readonly Problem[]): AuthConfigError {
  const sorted = [...problems].sort((a, b) => a.line - b.line);
  const listed = sorted.slice(0, MAX_LISTED_PROBLEMS).map((p) => p.text);
  const more = sorted.length - listed.length;
  if (more > 0) listed.push(`and ${more} more`);
  return new AuthConfigError(`${source}: ${listed.join("; ")}`);
}

function checkToken(token: string): string | undefined {
  if (token.length < MIN_TOKEN_LENGTH) return `must be at least ${MIN_TOKEN_LENGTH} characters`;
  if (token.length > MAX_TOKEN_LENGTH) return `must be at most ${MAX_TOKEN_LENGTH} characters`;
  if (!TOKEN_CHARS.test(token)) return "may contain only A-Z a-z 0-9 - . _ ~ + / (and = at the end)";
  return undefined;
}

function sha256(text: string): Buffer {
  return createHash("sha256").update(text, "utf8").digest();
}
