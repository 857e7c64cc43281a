/**
 * `session-registry completion bash|zsh`: shell completion scripts built
 * from the command table and the option specs, so that they never list a
 * command or flag that does not exist. zsh runs the bash function through
 * its bashcompinit, which zsh ships for exactly this.
 */
import type { OptionSpecs } from "./args.js";
import { COMMANDS } from "./commands.js";
import { CONNECTION_OPTIONS } from "./connection.js";
import { HELP_OPTION, TABLE_OPTION } from "./help.js";
import { OUTPUT_FORMATS, OUTPUT_OPTIONS } from "./output.js";

export const COMPLETION_SHELLS = ["bash", "zsh"] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

function flagWords(options: OptionSpecs): string[] {
  return Object.entries(options).flatMap(([name, o]) => [`--${name}`, ...(o.short !== undefined ? [`-${o.short}`] : [])]);
}

export async function completionScript(shell: CompletionShell): Promise<string> {
  // The daemon's flags, for `serve`; its config module is loaded only here.
  const { DAEMON_FLAG_NAMES } = await import("../daemon/config.js");
  const common = [...flagWords({ ...CONNECTION_OPTIONS, ...OUTPUT_OPTIONS, ...HELP_OPTION }), "--version"];
  const cases = COMMANDS.map((c) => {
    const words = [...flagWords({ ...c.options, ...(c.table ? TABLE_OPTION : {}) }), ...common];
    return `    ${c.name}) words="${words.join(" ")}" ;;`;
  });
  cases.push(`    serve) words="${DAEMON_FLAG_NAMES.map((f) => `--${f}`).join(" ")}" ;;`);
  // Their argument is a word, not a flag: completed whatever it starts with.
  const wordCase = (name: string, words: readonly string[]) =>
    `    ${name}) COMPREPLY=($(compgen -W "${words.join(" ")}" -- "$cur")); return ;;`;
  cases.push(wordCase("help", ["serve", ...COMMANDS.map((c) => c.name)]));
  cases.push(wordCase("completion", COMPLETION_SHELLS));
  const firstWords = ["serve", ...COMMANDS.map((c) => c.name), "help", "completion", "--help", "--version"];
  const bash = [
    "# session-registry completion for bash; load it with",
    "#   source <(session-registry completion bash)",
    "_session_registry() {",
    '  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}" words',
    '  if [ "$COMP_CWORD" -eq 1 ]; then',
    `    COMPREPLY=($(compgen -W "${firstWords.join(" ")}" -- "$cur"))`,
    "    return",
    "  fi",
    '  case "$prev" in',
    `    -w|--write-out) COMPREPLY=($(compgen -W "${OUTPUT_FORMATS.join(" ")}" -- "$cur")); return ;;`,
    '    --store) COMPREPLY=($(compgen -W "memory etcd" -- "$cur")); return ;;',
    "  esac",
    '  case "${COMP_WORDS[1]}" in',
    ...cases,
    "    *) return ;;",
    "  esac",
    '  case "$cur" in',
    '    -*|"") COMPREPLY=($(compgen -W "$words" -- "$cur")) ;;',
    "  esac",
    "}",
    // -o default: a flag's value (a path, an id) falls back to file names.
    "complete -o default -F _session_registry session-registry",
    "",
  ].join("\n");
  if (shell === "bash") return bash;
  return [
    "#compdef session-registry",
    "# session-registry completion for zsh; load it with",
    "#   source <(session-registry completion zsh)",
    "autoload -U +X bashcompinit && bashcompinit",
    bash.split("\n").slice(2).join("\n"),
  ].join("\n");
}
