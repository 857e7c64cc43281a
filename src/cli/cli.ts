/**
 * The CLI runner: picks the command, parses its flags, connects, runs it and
 * turns whatever it throws into a message on stderr and an exit code. It
 * touches the process only through CliIo, so it can run in a test as well.
 */
import { packageVersion } from "../version.js";

import { SessionRegistryClient } from "@session-registry/client";

import { booleanFlag, parseCommandLine, stringFlag, UsageError } from "./args.js";
import { COMMANDS, COMMANDS_BY_NAME, type Command, type CommandContext } from "./commands.js";
import { CONNECTION_OPTIONS, connectionFrom, DEFAULT_ADDR } from "./connection.js";
import type { TlsFiles } from "./diagnose.js";
import { describeFailure, ExitCode, explainFailure, retryNote } from "./errors.js";
import { commandHelp, HELP_OPTION, TABLE_OPTION, topLevelHelp } from "./help.js";

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
  if (name === "--version" || name === "-V") {
    io.stdout(`session-registry ${packageVersion()}\n`);
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
    if (command === undefined) return usageFailure(io, "", `unknown command ${JSON.stringify(rest[0])}`, false);
    io.stdout(commandHelp(command));
    return ExitCode.OK;
  }
  const command = COMMANDS_BY_NAME.get(name);
  if (command === undefined) {
    const what = name.startsWith("-") ? `unknown flag ${name} (flags go after the command)` : `unknown command ${JSON.stringify(name)}`;
    return usageFailure(io, "", what, rest.includes("--json"));
  }
  return runCommand(command, rest, io);
}

async function runCommand(command: Command, argv: readonly string[], io: CliIo): Promise<ExitCode> {
  // Known before parsing, so that even a usage error comes out as JSON.
  let json = argv.includes("--json");
  let addr = DEFAULT_ADDR;
  let tls: TlsFiles | undefined;
  let client: SessionRegistryClient | undefined;
  try {
    const args = parseCommandLine(argv, {
      ...command.options,
      ...(command.table ? TABLE_OPTION : {}),
      ...CONNECTION_OPTIONS,
      ...HELP_OPTION,
    });
    if (booleanFlag(args, "help")) {
      io.stdout(commandHelp(command));
      return ExitCode.OK;
    }
    json = booleanFlag(args, "json");
    const params = checkParams(command, args.positionals);
    const connection = connectionFrom(args, io.env);
    addr = connection.addr;
    tls = connection.tls;
    const ctx: CommandContext = {
      args,
      params,
      table: stringFlag(args, "table") ?? "",
      json,
      cwd: io.cwd,
      client() {
        // A write the SDK retries says so on stderr, so that a long wait is not a silent one.
        client ??= new SessionRegistryClient(connection.addr, { ...connection.options, onRetry: (e) => io.stderr(retryNote(e)) });
        return client;
      },
      print(value, text) {
        io.stdout(json ? `${JSON.stringify(value, null, 2)}\n` : text);
      },
      printLine(value, text) {
        io.stdout(json ? `${JSON.stringify(value)}\n` : text);
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

