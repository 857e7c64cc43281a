/**
 * The CLI runner: picks the command, parses its flags, connects, runs it and
 * turns whatever it throws into a message on stderr and an exit code. It
 * touches the process only through CliIo, so it can run in a test as well.
 */
import { packageVersion } from "../version.js";

import { SessionRegistryClient } from "@session-registry/client";

import { hasFlag, suggest } from "../args/index.js";
import { booleanFlag, parseCommandLine, stringFlag, UsageError } from "./args.js";
import { COMMANDS, COMMANDS_BY_NAME, type Command, type CommandContext } from "./commands.js";
import { CONNECTION_OPTIONS, connectionFrom, DEFAULT_ADDR } from "./connection.js";
import type { TlsFiles } from "./diagnose.js";
import { describeFailure, ExitCode, explainFailure, retryNote } from "./errors.js";
import { commandHelp, completionHelp, HELP_OPTION, TABLE_OPTION, topLevelHelp } from "./help.js";
import { OUTPUT_OPTIONS, outputFrom, valueLines, wantsJson } from "./output.js";

export interface CliIo {
  stdout(text: string): void;
  stderr(text: string): void;
  env: Readonly<Record<string, string | undefined>>;
  cwd: string;
  /** Aborted on the first SIGINT or SIGTERM; installs the handlers on first call. */
  interrupted(): AbortSignal;
}

/** Runs one CLI invocation (argv without node and the script) and returns its exit code. */
export async function runCli(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "-h" || name === "--help" || (name === "help" && rest.length === 0)) {
    io.stdout(topLevelHelp(COMMANDS));
    return ExitCode.OK;
  }
  if (name === "--version" || name === "-V") return printVersion(io);
  if ((name === "completion" && (rest.includes("--help") || rest.includes("-h"))) || (name === "help" && rest[0] === "completion")) {
    io.stdout(completionHelp());
    return ExitCode.OK;
  }
  if (name === "completion") {
    // Loaded only here: nothing else needs the scripts' text.
    const { completionScript, COMPLETION_SHELLS } = await import("./completion.js");
    const shell = rest[0];
    if (rest.length !== 1 || !(COMPLETION_SHELLS as readonly string[]).includes(shell!)) {
      return usageFailure(io, "completion", `give one shell: ${COMPLETION_SHELLS.join(" or ")}`, false);
    }
    io.stdout(await completionScript(shell as (typeof COMPLETION_SHELLS)[number]));
    return ExitCode.OK;
  }
  if (name === "help") {
    if (rest[0] === "serve") {
      // Loaded only here: the daemon's config module is not otherwise needed by the CLI.
      const { usageText } = await import("../daemon/config.js");
      io.stdout(usageText());
      return ExitCode.OK;
    }
    const command = COMMANDS_BY_NAME.get(rest[0] ?? "");
    if (command === undefined) return usageFailure(io, "", unknownCommand(rest[0] ?? ""), false);
    io.stdout(commandHelp(command));
    return ExitCode.OK;
  }
  const command = COMMANDS_BY_NAME.get(name);
  if (command === undefined) {
    const json = wantsJson(argv);
    if (!name.startsWith("-")) return usageFailure(io, "", unknownCommand(name), json);
    // The daemon's flags without `serve` (the old way to start it): say where they go.
    const flag = /^--([^=]+)/.exec(name)?.[1];
    // Loaded only on this path: the daemon's config module brings its logger.
    const { DAEMON_FLAG_NAMES } = await import("../daemon/config.js");
    if (flag !== undefined && DAEMON_FLAG_NAMES.includes(flag)) {
      return usageFailure(
        io,
        "",
        `${name} is a flag of the daemon, which only \`serve\` starts: session-registry serve ${argv.join(" ")}`,
        json,
      );
    }
    return usageFailure(io, "", `unknown flag ${name} (a command's flags go after the command)`, json);
  }
  return runCommand(command, rest, io);
}

/** Every word that may come first, for "did you mean". */
const FIRST_WORDS = ["serve", "help", "completion", ...COMMANDS.map((c) => c.name)];

function unknownCommand(name: string): string {
  const guess = suggest(name, FIRST_WORDS);
  return `unknown command ${JSON.stringify(name)}${guess === undefined ? "" : `; did you mean ${guess}?`}`;
}

function printVersion(io: CliIo): ExitCode {
  io.stdout(`session-registry ${packageVersion()}\n`);
  return ExitCode.OK;
}

/** `--version` (or -V) anywhere before a `--`: a user may add it to any command line, even an unfinished one. */
function asksVersion(argv: readonly string[]): boolean {
  return hasFlag(argv, "--version", "-V");
}

async function runCommand(command: Command, argv: readonly string[], io: CliIo): Promise<ExitCode> {
  if (asksVersion(argv)) return printVersion(io);
  // Known before parsing, so that even a usage error comes out as JSON.
  let json = wantsJson(argv);
  let addr = DEFAULT_ADDR;
  let tls: TlsFiles | undefined;
  let client: SessionRegistryClient | undefined;
  try {
    const args = parseCommandLine(argv, {
      ...command.options,
      ...(command.table ? TABLE_OPTION : {}),
      ...CONNECTION_OPTIONS,
      ...OUTPUT_OPTIONS,
      ...HELP_OPTION,
    });
    if (booleanFlag(args, "help")) {
      io.stdout(commandHelp(command));
      return ExitCode.OK;
    }
    const output = outputFrom(args);
    json = output.format === "json";
    const field = output.field ?? command.valueField;
    const params = checkParams(command, args.positionals);
    const connection = connectionFrom(args, io.env);
    addr = connection.addr;
    tls = connection.tls;
    const ctx: CommandContext = {
      args,
      params,
      table: stringFlag(args, "table") ?? "",
      json,
      format: output.format,
      addr,
      cwd: io.cwd,
      client() {
        // A write the SDK retries says so on stderr, so that a long wait is not a silent one.
        client ??= new SessionRegistryClient(connection.addr, { ...connection.options, onRetry: (e) => io.stderr(retryNote(e)) });
        return client;
      },
      print(value, text) {
        io.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : output.format === "value" ? valueLines(value, field) : text);
      },
      printLine(value, text) {
        io.stdout(json ? `${JSON.stringify(value)}\n` : output.format === "value" ? valueLines(value, field) : text);
      },
      note(text) {
        io.stderr(text);
      },
      interrupted: () => io.interrupted(),
    };
    return (await command.run(ctx)) ?? ExitCode.OK;
  } catch (err) {
    if (err instanceof UsageError) return usageFailure(io, command.name, err.message, json);
    const failure = await explainFailure(err, addr, tls);
    io.stderr(json ? `${JSON.stringify({ error: failure.json })}\n` : `${failure.message}\n`);
    return failure.exitCode;
  } finally {
    client?.close();
  }
}

function checkParams(command: Command, positionals: readonly string[]): readonly string[] {
  if (positionals.length > command.params.length) {
    throw new UsageError(`unexpected argument ${JSON.stringify(positionals[command.params.length])}`);
  }
  const missing = command.params.slice(positionals.length).find((p) => p.required);
  if (missing !== undefined) throw new UsageError(`missing ${missing.name}`);
  return positionals;
}

function usageFailure(io: CliIo, commandName: string, problem: string, json: boolean): ExitCode {
  const failure = describeFailure(new UsageError(problem), { addr: DEFAULT_ADDR });
  if (json) {
    io.stderr(`${JSON.stringify({ error: failure.json })}\n`);
  } else {
    const prefix = commandName === "" ? "session-registry" : `session-registry ${commandName}`;
    io.stderr(`${prefix}: ${problem}\nRun \`${prefix} --help\` for usage.\n`);
  }
  return failure.exitCode;
}
