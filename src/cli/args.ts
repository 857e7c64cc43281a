/**
 * Argument parsing for the CLI: node's util.parseArgs in strict mode, one
 * option table per subcommand, and the value parsers (durations, integers,
 * `k=v` labels) whose errors are UsageErrors, so that a bad flag exits 2
 * before any call is made.
 */
import { isAbsolute, resolve } from "node:path";
import { parseArgs } from "node:util";

import { describeParseArgsError } from "../daemon/config.js";

/** A bad command line: unknown flag, missing or malformed value, wrong arguments. Exit code 2. */
export class UsageError extends Error {
  override readonly name = "UsageError";
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

export function parseCommandLine(argv: readonly string[], options: OptionSpecs): ParsedArgs {
  const nodeOptions: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {};
  for (const [name, o] of Object.entries(options)) {
    nodeOptions[name] = { type: o.type, ...(o.multiple ? { multiple: true } : {}), ...(o.short ? { short: o.short } : {}) };
  }
  try {
    const { values, positionals } = parseArgs({ args: [...argv], options: nodeOptions, strict: true, allowPositionals: true });
    return { values, positionals };
  } catch (err) {
    throw new UsageError(describeParseArgsError(err));
  }
}

/** The string value of a flag, or undefined when absent. */
export function stringFlag(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name];
  return typeof v === "string" ? v : undefined;
}

export function booleanFlag(args: ParsedArgs, name: string): boolean {
  return args.values[name] === true;
}

/** Every value of a repeatable flag, in order. */
export function listFlag(args: ParsedArgs, name: string): string[] {
  const v = args.values[name];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === "string") : [];
}

/** A non-negative integer that fits a JS number exactly (revisions, limits). */
export function parseCount(raw: string, flag: string): number {
  // Digits only: "1e3", "-1", "0x10" and " 5" are rejected rather than guessed at.
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(n)) {
    throw new UsageError(`${flag} must be a whole number >= 0, got ${JSON.stringify(raw)}`);
  }
  return n;
}

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "30s", "1.5s", "500ms", "2m", "1h", or a bare number of seconds -> milliseconds. */
export function parseDuration(raw: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(raw);
  const ms = m ? Math.round(Number(m[1]) * (DURATION_UNITS[m[2] ?? "s"] ?? 1000)) : Number.NaN;
  if (!Number.isSafeInteger(ms)) {
    throw new UsageError(`${flag} must be a duration such as 30s, 500ms, 5m or 1h, got ${JSON.stringify(raw)}`);
  }
  return ms;
}

/** `--meta k=v` values to a map; the value may contain "=", the key may not be empty. */
export function parseLabels(raw: readonly string[], flag: string): Map<string, string> {
  const labels = new Map<string, string>();
  for (const item of raw) {
    const i = item.indexOf("=");
    if (i <= 0) throw new UsageError(`${flag} takes KEY=VALUE, got ${JSON.stringify(item)}`);
    labels.set(item.slice(0, i), item.slice(i + 1));
  }
  return labels;
}

/**
 * A project path as typed: relative paths are resolved against the current
 * directory (so `--path .` works); absolute ones pass through untouched, so
 * the daemon, not the CLI, decides what is valid ("/a/../b" is its call).
 */
export function projectPathArg(raw: string, cwd: string): string {
  return raw === "" || isAbsolute(raw) ? raw : resolve(cwd, raw);
}
