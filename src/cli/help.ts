/**
 * --help texts, built from the command table and the option specs, so that a
 * flag is described in exactly one place.
 */
import type { OptionSpecs } from "./args.js";
import type { Command } from "./commands.js";
import { CONNECTION_OPTIONS } from "./connection.js";
import { EXIT_CODE_HELP } from "./errors.js";
import { OUTPUT_OPTIONS } from "./output.js";

export const TABLE_OPTION: OptionSpecs = {
  table: { type: "string", value: "TABLE", help: "The table; default: default." },
};

export const HELP_OPTION: OptionSpecs = {
  help: { type: "boolean", short: "h", help: "Print this help and exit." },
  version: { type: "boolean", short: "V", help: "Print the version and exit." },
};

const WIDTH = 100;

export function topLevelHelp(commands: readonly Command[]): string {
  const rows: [string, string][] = [
    ["serve [flags]", "Run the daemon (the only command that does). `session-registry serve --help` lists its flags."],
    ...commands.map((c): [string, string] => [c.name, c.summary]),
    ["help [COMMAND]", "Print this help, or a command's."],
    ["completion bash|zsh", "Print a shell completion script: source <(session-registry completion bash)."],
  ];
  return [
    "Usage: session-registry <command> [flags]",
    "",
    "Runs the session-registry daemon, or talks to a running one through the TypeScript SDK.",
    "",
    "Commands:",
    table(rows),
    "",
    "Flags of every client command:",
    optionsText({ ...CONNECTION_OPTIONS, ...OUTPUT_OPTIONS }),
    "",
    "Top-level flags:",
    table([
      ["-h, --help", "Print this help and exit."],
      ["-V, --version", "Print the version and exit."],
    ]),
    "",
    exitCodesText(),
    "",
    "Without --field, -w value prints each command's main value: a session's id, a table's name,",
    "status's SERVING or NOT_SERVING, keepalive's new expiry, watch's revisions.",
    "",
    "Run `session-registry <command> --help` for a command's flags and examples,",
    "and `session-registry serve --help` for the daemon's flags.",
    "",
  ].join("\n");
}

/** `completion`'s help: it has no entry in the command table, which the scripts are built from. */
export function completionHelp(): string {
  return [
    "Usage: session-registry completion bash|zsh",
    "",
    wrap(
      "Print a shell completion script for the commands, each command's flags, -w's forms and the daemon's flags. " +
        "zsh runs the same function through its bashcompinit.",
    ),
    "",
    "Examples:",
    "  source <(session-registry completion bash)   # in ~/.bashrc",
    "  source <(session-registry completion zsh)    # in ~/.zshrc, after compinit",
    "",
  ].join("\n");
}

export function commandHelp(c: Command): string {
  const own: OptionSpecs = { ...c.options, ...(c.table ? TABLE_OPTION : {}) };
  const parts = [`Usage: session-registry ${c.name}${c.synopsis === "" ? "" : ` ${c.synopsis}`} [flags]`, "", wrap(c.summary)];
  for (const paragraph of c.description?.split("\n\n") ?? []) {
    // Indented paragraphs (formats, examples) are kept as written.
    parts.push("", paragraph.startsWith("  ") ? paragraph : wrap(paragraph));
  }
  if (Object.keys(own).length > 0) parts.push("", "Flags:", optionsText(own));
  parts.push("", "Connection and output:", optionsText({ ...CONNECTION_OPTIONS, ...OUTPUT_OPTIONS, ...HELP_OPTION }));
  parts.push("", "Examples:", ...c.examples.map((e) => `  ${e}`));
  parts.push("", "Exit codes: see `session-registry --help`.", "");
  return parts.join("\n");
}

export function exitCodesText(): string {
  return ["Exit codes:", table(EXIT_CODE_HELP.map(([code, text]) => [String(code), text]))].join("\n");
}

function optionsText(options: OptionSpecs): string {
  return table(
    Object.entries(options).map(([name, o]) => {
      const flag = `${o.short !== undefined ? `-${o.short}, ` : ""}--${name}${o.value !== undefined ? ` ${o.value}` : ""}`;
      return [flag, o.help];
    }),
  );
}

/** Two columns; the right one wrapped to WIDTH and indented under itself. */
function table(rows: readonly (readonly [string, string])[]): string {
  const left = Math.max(...rows.map(([l]) => l.length)) + 2;
  return rows
    .map(([l, r]) => {
      const lines = wrapLines(r, Math.max(30, WIDTH - left - 2));
      return lines.map((line, i) => `  ${(i === 0 ? l : "").padEnd(left)}${line}`).join("\n");
    })
    .join("\n");
}

function wrap(text: string): string {
  return wrapLines(text, WIDTH).join("\n");
}

function wrapLines(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else {
      line = line === "" ? word : `${line} ${word}`;
    }
  }
  if (line !== "" || lines.length === 0) lines.push(line);
  return lines;
}
