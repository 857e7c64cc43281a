/**
 * The output forms, chosen as etcdctl does with `-w/--write-out`: `table`
 * (for people: aligned columns, or `key: value` lines for one object; the
 * default), `json` (one document; one object per line for streams; `--json`
 * is short for it, as in grpcurl's JSON output) and `value` (one bare value
 * per line, for scripts: `--field` picks it, each command has a default).
 */
import { UsageError, stringFlag, booleanFlag, type OptionSpecs, type ParsedArgs } from "./args.js";
import { clean } from "./format.js";

export const OUTPUT_FORMATS = ["table", "json", "value"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export const OUTPUT_OPTIONS: OptionSpecs = {
  "write-out": {
    type: "string",
    short: "w",
    value: "FORMAT",
    help: "Output form: table (for people; the default), json, or value (one value per line, see --field).",
  },
  json: { type: "boolean", help: "Same as -w json: one JSON document (one object per line for streams); errors as JSON on stderr." },
  field: {
    type: "string",
    value: "NAME",
    help: "With -w value (which it implies): the JSON field to print, e.g. id, expireTime, metadata.tool; default: the command's.",
  },
};

export interface Output {
  format: OutputFormat;
  /** The dotted JSON path -w value prints; undefined: the command's default. */
  field: string | undefined;
}

/** Reads -w, --json and --field; throws UsageError when they disagree. */
export function outputFrom(args: ParsedArgs): Output {
  const written = stringFlag(args, "write-out");
  const field = stringFlag(args, "field");
  if (written !== undefined && !(OUTPUT_FORMATS as readonly string[]).includes(written)) {
    throw new UsageError(`-w/--write-out must be one of ${OUTPUT_FORMATS.join(", ")}, got ${JSON.stringify(written)}`);
  }
  if (booleanFlag(args, "json") && written !== undefined && written !== "json") {
    throw new UsageError(`--json and -w ${written} exclude each other`);
  }
  if (field !== undefined && field.trim() === "") throw new UsageError("--field must name a field");
  let format: OutputFormat = booleanFlag(args, "json") ? "json" : ((written as OutputFormat | undefined) ?? "table");
  if (field !== undefined) {
    if (format !== "table" && format !== "value") throw new UsageError(`--field goes with -w value, not -w ${format}`);
    format = "value";
  }
  return { format, field };
}

/**
 * Whether the command line asks for JSON, read before parsing so that even a
 * usage error comes out as JSON.
 */
export function wantsJson(argv: readonly string[]): boolean {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (a === "--json" || a === "--write-out=json" || a === "-wjson") return true;
    if ((a === "-w" || a === "--write-out") && argv[i + 1] === "json") return true;
  }
  return false;
}

/**
 * The lines of -w value: the value at `path` (dotted) in `doc`; arrays,
 * at the top or on the way, give one line per element. Strings print bare
 * (control characters escaped), null as an empty line, objects as JSON.
 */
export function valueLines(doc: unknown, path: string): string {
  const out: string[] = [];
  const walk = (value: unknown, keys: readonly string[]): void => {
    if (Array.isArray(value)) {
      for (const v of value) walk(v, keys);
      return;
    }
    if (keys.length === 0) {
      out.push(scalar(value));
      return;
    }
    if (typeof value === "object" && value !== null && Object.hasOwn(value, keys[0]!)) {
      walk((value as Record<string, unknown>)[keys[0]!], keys.slice(1));
      return;
    }
    throw new UsageError(`--field ${path}: no such field in the output (run with --json to see its fields)`);
  };
  walk(doc, path.split("."));
  return out.map((line) => `${line}\n`).join("");
}

function scalar(value: unknown): string {
  if (value === null || value === undefined) return "";
  if (typeof value === "string") return clean(value);
  if (typeof value === "object") return clean(JSON.stringify(value));
  // What else a JSON document holds: a number or a boolean.
  const rest: number | boolean = value as number | boolean;
  return String(rest);
}
