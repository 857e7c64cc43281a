/**
 * The one argument module of the daemon and the CLI. It owns: reading a
 * command line against an option table (node's util.parseArgs, strict, with
 * "did you mean" for a mistyped flag), the value parsers both share
 * (integers, durations, byte sizes, switches, `host:port`), environment fallbacks
 * (`--max-sessions` <- SESSION_REGISTRY_MAX_SESSIONS, an empty variable
 * counting as unset), and printing a duration back the way people write it.
 *
 * Value parsers return the value or `{ error: "must be ..." }`, a fragment
 * the caller prefixes with the flag (or variable) it came from. Nothing here
 * imports more than node built-ins: the CLI loads it on every start.
 */
import { isIPv4, isIPv6 } from "node:net";
import { parseArgs } from "node:util";

/** A bad command line: unknown flag or command, missing or malformed value. Exit code 2. */
export class UsageError extends Error {
  override readonly name: string = "UsageError";
}

export interface OptionSpec {
  type: "string" | "boolean";
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in --help, e.g. `N` in `--max-sessions N`. */
  value?: string;
  help: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export interface ParsedArgs {
  values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>;
  positionals: readonly string[];
}

/** Parses argv against `options`; throws UsageError, with a suggestion for a mistyped flag. */
export function parseFlags(
  argv: readonly string[],
  options: Readonly<Record<string, Pick<OptionSpec, "type" | "multiple" | "short">>>,
): ParsedArgs {
  const nodeOptions: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const [name, o] of Object.entries(options)) {
    nodeOptions[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: nodeOptions, strict: true, allowPositionals: true });
    return { values, positionals };
  } catch (err) {
    let message = describeParseArgsError(err);
    const unknown = /^unknown flag (-{1,2}[^\s=]+)/.exec(message)?.[1];
    if (unknown !== undefined) {
      const guess = suggest(unknown.replace(/^-+/, ""), Object.keys(options));
      if (guess !== undefined) message += `; did you mean --${guess}?`;
    }
    throw new UsageError(message);
  }
}

/** Whether one of `flags` (e.g. "--version", "-V") is on the command line before a `--`. */
export function hasFlag(argv: readonly string[], ...flags: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).some((a) => flags.includes(a));
}

/** Rewords util.parseArgs errors, whose messages are long and name options in quotes. */
export function describeParseArgsError(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  const message = err instanceof Error ? err.message : String(err);
  // The quoted part names the option, e.g. 'Option '-h, --help' does not take an argument'.
  const quoted = /'([^']+)'/.exec(message)?.[1] ?? "";
  const option = /--[A-Za-z0-9-]+/.exec(quoted)?.[0] ?? /^-{1,2}[^\s]+/.exec(quoted)?.[0];
  if (code === "ERR_PARSE_ARGS_UNKNOWN_OPTION" && option) return `unknown flag ${option}`;
  if (code === "ERR_PARSE_ARGS_INVALID_OPTION_VALUE" && option) {
    if (/does not take an argument/.test(message)) return `${option} takes no value`;
    if (/ambiguous/.test(message)) return `${option} needs a value (write ${option}=VALUE for one starting with "-")`;
    return `${option} needs a value`;
  }
  return message;
}

/**
 * The candidate closest to `word`, if it is close enough to be what was
 * meant: at most one edit for short words, two for longer ones (a swap of two
 * neighbours counts as one), or a word that starts the candidate (`--max`
 * for `--max-sessions`) when only one candidate starts so.
 */
export function suggest(word: string, candidates: readonly string[]): string | undefined {
  const limit = word.length <= 4 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word.toLowerCase(), c.toLowerCase());
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  if (best !== undefined && bestDistance <= limit && bestDistance < word.length) return best;
  const prefixed = word.length >= 3 ? candidates.filter((c) => c.startsWith(word)) : [];
  return prefixed.length === 1 ? prefixed[0] : undefined;
}

/** Levenshtein distance with adjacent transpositions (optimal string alignment). */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

// -- environment fallbacks ---------------------------------------------------

export const ENV_PREFIX = "SESSION_REGISTRY_";

/** `max-sessions` -> `SESSION_REGISTRY_MAX_SESSIONS`. */
export function envVarName(flag: string): string {
  return ENV_PREFIX + flag.toUpperCase().replaceAll("-", "_");
}

/** A variable's value; an empty one counts as unset, as shells make clearing one awkward. */
export function envValue(env: Readonly<Record<string, string | undefined>>, name: string): string | undefined {
  const value = env[name];
  return value === "" ? undefined : value;
}

// -- value parsers -------------------------------------------------------------

export type Parsed<T> = T | { error: string };

export function isParseError<T>(value: Parsed<T>): value is { error: string } {
  return typeof value === "object" && value !== null && "error" in value;
}

/** Integers from min to max; digits only, so "1e3", "-1", "0x10" and " 5" are rejected rather than guessed at. */
export function parseInteger(raw: string, min: number, max: number = Number.MAX_SAFE_INTEGER): Parsed<number> {
  const range = max === Number.MAX_SAFE_INTEGER ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n) || n < min || n > max) return { error: `must be ${range}` };
  return n;
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "10" (seconds), "10s", "1.5s", "500ms", "2m", "1h" -> milliseconds, from minMs to maxMs. */
export function parseDuration(raw: string, minMs = 0, maxMs: number = Number.MAX_SAFE_INTEGER): Parsed<number> {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw);
  const ms = m ? Math.round(Number(m[1]) * DURATION_UNITS[m[2] ?? "s"]!) : Number.NaN;
  if (!Number.isSafeInteger(ms) || ms < minMs || ms > maxMs) {
    const range = maxMs === Number.MAX_SAFE_INTEGER ? "" : ` from ${formatDuration(minMs)} to ${formatDuration(maxMs)}`;
    return { error: `must be a duration${range} such as 30s, 500ms, 5m or 1h` };
  }
  return ms;
}

/**
 * Milliseconds in the largest unit that divides them exactly, as a person
 * would have typed them: 300000 -> "5m", 90000 -> "90s", 1500 -> "1500ms",
 * 7200000 -> "2h", 0 -> "0s". Each form parses back to the same value.
 */
export function formatDuration(ms: number): string {
  if (ms === 0) return "0s";
  for (const [unit, size] of [
    ["h", 3_600_000],
    ["m", 60_000],
    ["s", 1000],
  ] as const) {
    if (ms % size === 0) return `${ms / size}${unit}`;
  }
  return `${ms}ms`;
}

const MIB = 1024 * 1024;
const BYTE_UNITS: Readonly<Record<string, number>> = { "": 1, KiB: 1024, MiB: MIB, GiB: 1024 * MIB };

/** "1048576", "64KiB", "512MiB", "2GiB" -> bytes, from min to 2^53-1. */
export function parseBytes(raw: string, min: number): Parsed<number> {
  const m = /^(\d+)(KiB|MiB|GiB)?$/.exec(raw);
  const n = m ? Number(m[1]) * BYTE_UNITS[m[2] ?? ""]! : NaN;
  if (!Number.isSafeInteger(n) || n < min) {
    return {
      error: `must be a size of at least ${min >= MIB ? `${min / MIB}MiB` : `${min} bytes`}: bytes, or a whole number with KiB, MiB or GiB`,
    };
  }
  return n;
}

/** A switch's value from its variable: 1/true/yes or 0/false/no. */
export function parseBoolean(raw: string): Parsed<boolean> {
  const text = raw.toLowerCase();
  if (text === "1" || text === "true" || text === "yes") return true;
  if (text === "0" || text === "false" || text === "no") return false;
  return { error: "must be 1, true or yes (on) or 0, false or no (off)" };
}

/** Splits `host:port` / `[v6]:port`; throws a plain Error ("must be ...") when malformed. */
export function parseListen(listen: string): { host: string; port: number } {
  const malformed = () => new Error("must be host:port (IPv6 as [::1]:port) with a port from 0 to 65535");
  let host: string;
  let portText: string;
  if (listen.startsWith("[")) {
    const m = /^\[([^\]]+)\]:([^:]*)$/.exec(listen);
    if (!m || !isIPv6(m[1]!)) throw malformed();
    host = m[1]!;
    portText = m[2]!;
  } else {
    const i = listen.lastIndexOf(":");
    if (i <= 0) throw malformed();
    host = listen.slice(0, i);
    portText = listen.slice(i + 1);
    // A bare IPv6 address has colons of its own; insist on brackets so the port is unambiguous.
    if (host.includes(":")) throw malformed();
    if (!isIPv4(host) && !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(host)) {
      throw malformed();
    }
  }
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) throw malformed();
  return { host, port: Number(portText) };
}
