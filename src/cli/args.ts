/**
 * The CLI's side of the shared argument module (../args/): the same parser
 * and value parsers as the daemon, with errors thrown as UsageErrors naming
 * the flag, so that a bad flag exits 2 before any call is made; and the
 * CLI's own values (`k=v` labels, project paths).
 */
import { isAbsolute, resolve } from "node:path";

import {
  isParseError,
  parseDuration as parseDurationValue,
  parseFlags,
  parseInteger,
  UsageError,
  type OptionSpecs,
  type Parsed,
  type ParsedArgs,
} from "../args/index.js";

export { UsageError, type OptionSpec, type OptionSpecs, type ParsedArgs } from "../args/index.js";

export function parseCommandLine(argv: readonly string[], options: OptionSpecs): ParsedArgs {
  return parseFlags(argv, options);
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

function valueOf<T>(parsed: Parsed<T>, raw: string, flag: string): T {
  if (isParseError(parsed)) throw new UsageError(`${flag} ${parsed.error}, got ${JSON.stringify(raw)}`);
  return parsed;
}

/** A non-negative integer that fits a JS number exactly (revisions, limits). */
export function parseCount(raw: string, flag: string): number {
  return valueOf(parseInteger(raw, 0), raw, flag);
}

/** "30s", "1.5s", "500ms", "2m", "1h", or a bare number of seconds -> milliseconds. */
export function parseDuration(raw: string, flag: string): number {
  return valueOf(parseDurationValue(raw), raw, flag);
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
