/**
 * The client subcommands, one entry each: synopsis, flags, and a run function
 * that makes SDK calls and prints the result in the chosen form. Flag parsing,
 * connecting, error reporting and exit codes are the runner's (cli.ts), so a
 * command is only what differs between them.
 */
import { setTimeout as sleep } from "node:timers/promises";

import {
  ErrorReason,
  SessionRegistryError,
  type SessionRegistryClient,
  type Table,
  type UpdateInput,
  type WatchOptions,
} from "@session-registry/client";

import {
  booleanFlag,
  listFlag,
  parseCount,
  parseDuration,
  parseLabels,
  projectPathArg,
  stringFlag,
  UsageError,
  type OptionSpecs,
  type ParsedArgs,
} from "./args.js";
import { ExitCode } from "./errors.js";
import type { OutputFormat } from "./output.js";
import {
  keyValues,
  sessionJson,
  sessionsText,
  sessionText,
  tableJson,
  tablesText,
  tableText,
  statusTablesText,
  timeText,
  durationText,
  watchItemJson,
  watchItemLines,
} from "./format.js";

/** What a command gets from the runner. */
export interface CommandContext {
  args: ParsedArgs;
  /** The positional arguments after the command name, already counted against `params`. */
  params: readonly string[];
  /** --table, or "" (the daemon's `default`) for commands without it. */
  table: string;
  json: boolean;
  /** The output form (-w); `json` is true for "json". */
  format: OutputFormat;
  /** The daemon's address, as the user gave it (or the default). */
  addr: string;
  cwd: string;
  /** The client, made on first use; the runner closes it. */
  client(): SessionRegistryClient;
  /** Prints one result: `value` as a JSON document with -w json, its --field with -w value, else `text`. */
  print(value: unknown, text: string): void;
  /** Prints one item of a stream: `value` as one JSON line with -w json, its --field with -w value, else `text`. */
  printLine(value: unknown, text: string): void;
  /** A note for people on stderr (never part of the output a script parses). */
  note(text: string): void;
  /** Aborted on the first SIGINT or SIGTERM; the handlers are installed on first call. */
  interrupted(): AbortSignal;
}

export interface Command {
  name: string;
  /** Positional arguments and the command's own flags, as the usage line shows them. */
  synopsis: string;
  summary: string;
  /** More text for `--help`, paragraphs separated by blank lines. */
  description?: string;
  params: { name: string; required: boolean }[];
  options: OptionSpecs;
  /** Takes --table. */
  table: boolean;
  /** The JSON field `-w value` prints without --field (dotted; arrays give a line per element). */
  valueField: string;
  examples: string[];
  // eslint-disable-next-line @typescript-eslint/no-invalid-void-type -- a command that returns nothing exits 0 and needs no `return`
  run(ctx: CommandContext): Promise<ExitCode | void>;
}

const TTL_HELP = "e.g. 30s, 5m; 1s to 24h";

export const COMMANDS: readonly Command[] = [
  {
    name: "status",
    synopsis: "",
    summary: "Show whether the daemon serves, its version and store, and every table with its count and limit.",
    description:
      "Exit codes: 0 when the daemon serves; 8 when it does not: it cannot be reached, it is shutting down, or " +
      "its store (etcd) is unavailable. The output says which; with an unavailable store it still shows the " +
      "version and the store, and no tables (they live in the store).",
    params: [],
    options: {},
    table: false,
    valueField: "status",
    examples: ["session-registry status", "session-registry status -w value   # SERVING or NOT_SERVING", "session-registry status --json"],
    async run(ctx) {
      const client = ctx.client();
      const info = await client.serverInfo();
      let tables: Table[] | undefined;
      if (info.storeAvailable) {
        try {
          tables = await client.listTables();
        } catch (err) {
          // The store went away between the two calls: the daemon is reachable but does not serve.
          if (!(err instanceof SessionRegistryError && err.reason === ErrorReason.STORE_UNAVAILABLE)) throw err;
        }
      }
      const serving = tables !== undefined;
      const why = serving ? "" : ` (its store, ${info.store}, is unavailable)`;
      const json = {
        address: ctx.addr,
        status: serving ? "SERVING" : "NOT_SERVING",
        version: info.version,
        store: info.store,
        storeAvailable: serving,
        tables: tables?.map((t) => ({ name: t.name, sessionCount: t.sessionCount, maxSessions: t.maxSessions })) ?? null,
      };
      const head = keyValues([
        ["address", ctx.addr],
        ["status", `${json.status}${why}`],
        ["version", info.version],
        ["store", `${info.store} (${serving ? "available" : "unavailable"})`],
      ]);
      ctx.print(json, tables === undefined ? head : `${head}\n${statusTablesText(tables)}`);
      return serving ? ExitCode.OK : ExitCode.UNAVAILABLE;
    },
  },
  {
    name: "tables",
    synopsis: "",
    summary: "List every table with its session count and limit.",
    params: [],
    options: {},
    table: false,
    valueField: "name",
    examples: ["session-registry tables"],
    async run(ctx) {
      const tables = await ctx.client().listTables();
      ctx.print(tables.map(tableJson), tablesText(tables));
    },
  },
  {
    name: "create-table",
    synopsis: "NAME [--max-sessions N]",
    summary: "Create a table (a no-op if it exists with the same limit).",
    description: "Without --max-sessions the table gets the daemon's --max-sessions.",
    params: [{ name: "NAME", required: true }],
    options: { "max-sessions": { type: "string", value: "N", help: "The table's session limit; default: the daemon's." } },
    table: false,
    valueField: "table.name",
    examples: ["session-registry create-table agents --max-sessions 20"],
    async run(ctx) {
      const raw = stringFlag(ctx.args, "max-sessions");
      const maxSessions = raw === undefined ? 0 : parseCount(raw, "--max-sessions");
      const { table, created } = await ctx.client().createTable({ table: ctx.params[0]!, maxSessions });
      ctx.print({ created, table: tableJson(table) }, tableText(table, [["result", created ? "created" : "already existed, unchanged"]]));
    },
  },
  {
    name: "get-table",
    synopsis: "[NAME]",
    summary: "Show one table (default: the table `default`).",
    params: [{ name: "NAME", required: false }],
    options: {},
    table: false,
    valueField: "name",
    examples: ["session-registry get-table agents"],
    async run(ctx) {
      const table = await ctx.client().getTable(ctx.params[0] ?? "");
      ctx.print(tableJson(table), tableText(table));
    },
  },
  {
    name: "delete-table",
    synopsis: "NAME [--force]",
    summary: "Delete a table; one that still holds sessions needs --force.",
    params: [{ name: "NAME", required: true }],
    options: { force: { type: "boolean", help: "Delete the table with its sessions (watchers see no events for them)." } },
    table: false,
    valueField: "table",
    examples: ["session-registry delete-table agents --force"],
    async run(ctx) {
      const name = ctx.params[0]!;
      await ctx.client().deleteTable(name, { force: booleanFlag(ctx.args, "force") });
      ctx.print({ deleted: true, table: name }, `Deleted table ${name}.\n`);
    },
  },
  {
    name: "register",
    synopsis: "--path PATH [--id ID] [--name NAME] [--meta KEY=VALUE ...] [--ttl DURATION]",
    summary: "Register a session and print it as stored.",
    description:
      "A relative --path is resolved against the current directory. Without --id the daemon makes a UUID; " +
      "without --name the name is the path's last segment. With --ttl the session expires unless kept alive " +
      "(see keepalive).",
    params: [],
    options: {
      path: { type: "string", value: "PATH", help: "The project's directory (required)." },
      id: { type: "string", value: "ID", help: "The session id; default: a new UUID." },
      name: { type: "string", value: "NAME", help: "Display name; default: the last segment of the path." },
      meta: { type: "string", multiple: true, value: "KEY=VALUE", help: "A label; repeat for more." },
      ttl: { type: "string", value: "DURATION", help: `Expire unless kept alive within this time (${TTL_HELP}).` },
    },
    table: true,
    valueField: "id",
    examples: ["session-registry register --path ~/src/app --meta tool=editor --ttl 60s"],
    async run(ctx) {
      const path = stringFlag(ctx.args, "path");
      if (path === undefined) throw new UsageError("--path is required");
      const ttl = stringFlag(ctx.args, "ttl");
      const session = await ctx.client().register(
        {
          projectPath: projectPathArg(path, ctx.cwd),
          id: stringFlag(ctx.args, "id") ?? "",
          name: stringFlag(ctx.args, "name") ?? "",
          metadata: parseLabels(listFlag(ctx.args, "meta"), "--meta"),
          ttlMs: ttl === undefined ? 0 : parseDuration(ttl, "--ttl"),
        },
        { table: ctx.table },
      );
      ctx.print(sessionJson(session), sessionText(session));
    },
  },
  {
    name: "lookup",
    synopsis: "(--id ID | --path PATH | --name NAME)",
    summary: "Find one session by id, project path or name.",
    params: [],
    options: {
      id: { type: "string", value: "ID", help: "The session id." },
      path: { type: "string", value: "PATH", help: "The project path (relative: against the current directory)." },
      name: { type: "string", value: "NAME", help: "The session name (the oldest session of that name)." },
    },
    table: true,
    valueField: "id",
    examples: ["session-registry lookup --path .", "session-registry lookup --name app --json"],
    async run(ctx) {
      const id = stringFlag(ctx.args, "id");
      const path = stringFlag(ctx.args, "path");
      const name = stringFlag(ctx.args, "name");
      const given = [id, path, name].filter((v) => v !== undefined).length;
      if (given !== 1) throw new UsageError("give exactly one of --id, --path or --name");
      const key = id !== undefined ? { id } : path !== undefined ? { projectPath: projectPathArg(path, ctx.cwd) } : { name: name! };
      const session = await ctx.client().lookup(key, { table: ctx.table });
      ctx.print(sessionJson(session), sessionText(session));
    },
  },
  {
    name: "ls",
    synopsis: "[--page-size N]",
    summary: "List every session of a table, oldest first (all pages).",
    params: [],
    options: { "page-size": { type: "string", value: "N", help: "Sessions per call; default: the daemon's." } },
    table: true,
    valueField: "id",
    examples: ["session-registry ls --table agents"],
    async run(ctx) {
      const raw = stringFlag(ctx.args, "page-size");
      const pageSize = raw === undefined ? 0 : parseCount(raw, "--page-size");
      const sessions = [];
      for await (const s of ctx.client().list({ table: ctx.table, pageSize })) sessions.push(s);
      if (sessions.length === 0 && ctx.format === "table") {
        ctx.note(`No sessions in table ${ctx.table === "" ? "default" : ctx.table}.\n`);
        return;
      }
      ctx.print(sessions.map(sessionJson), sessionsText(sessions));
    },
  },
  {
    name: "update",
    synopsis: "ID [--name NAME] [--path PATH] [--meta KEY=VALUE ... | --clear-meta] [--ttl DURATION | --no-ttl] [--expected-revision R]",
    summary: "Change some fields of a session.",
    description:
      "Only the fields given change. --meta replaces all labels with the ones given. With --expected-revision " +
      'the update happens only if the session is still at that revision (exit 6 otherwise). --name "" derives ' +
      "the name from the path again.",
    params: [{ name: "ID", required: true }],
    options: {
      name: { type: "string", value: "NAME", help: "New display name." },
      path: { type: "string", value: "PATH", help: "New project path." },
      meta: { type: "string", multiple: true, value: "KEY=VALUE", help: "New labels, replacing all; repeat for more." },
      "clear-meta": { type: "boolean", help: "Remove all labels." },
      ttl: { type: "string", value: "DURATION", help: `New ttl (${TTL_HELP}); the session expires that long from now.` },
      "no-ttl": { type: "boolean", help: "Remove the ttl: the session never expires." },
      "expected-revision": { type: "string", value: "R", help: "Update only if the session is at this revision." },
    },
    table: true,
    valueField: "id",
    examples: ["session-registry update 3f2a… --name 'app (main)' --expected-revision 7"],
    async run(ctx) {
      const input: UpdateInput = { id: ctx.params[0]!, table: ctx.table };
      const name = stringFlag(ctx.args, "name");
      const path = stringFlag(ctx.args, "path");
      const meta = listFlag(ctx.args, "meta");
      const ttl = stringFlag(ctx.args, "ttl");
      const expected = stringFlag(ctx.args, "expected-revision");
      if (meta.length > 0 && booleanFlag(ctx.args, "clear-meta")) throw new UsageError("--meta and --clear-meta exclude each other");
      if (ttl !== undefined && booleanFlag(ctx.args, "no-ttl")) throw new UsageError("--ttl and --no-ttl exclude each other");
      if (name !== undefined) input.name = name;
      if (path !== undefined) input.projectPath = projectPathArg(path, ctx.cwd);
      if (meta.length > 0) input.metadata = parseLabels(meta, "--meta");
      if (booleanFlag(ctx.args, "clear-meta")) input.metadata = {};
      if (ttl !== undefined) input.ttlMs = parseDuration(ttl, "--ttl");
      if (booleanFlag(ctx.args, "no-ttl")) input.ttlMs = null;
      if (expected !== undefined) input.expectedRevision = parseCount(expected, "--expected-revision");
      if (input.name === undefined && input.projectPath === undefined && input.metadata === undefined && input.ttlMs === undefined) {
        throw new UsageError("nothing to update: give --name, --path, --meta, --clear-meta, --ttl or --no-ttl");
      }
      const session = await ctx.client().update(input);
      ctx.print(sessionJson(session), sessionText(session));
    },
  },
  {
    name: "rm",
    synopsis: "ID [--expected-revision R] [--allow-missing]",
    summary: "Remove a session.",
    params: [{ name: "ID", required: true }],
    options: {
      "expected-revision": { type: "string", value: "R", help: "Remove only if the session is at this revision." },
      "allow-missing": { type: "boolean", help: "Succeed (exit 0) if there is no such session." },
    },
    table: true,
    valueField: "removed",
    examples: ["session-registry rm 3f2a… --allow-missing"],
    async run(ctx) {
      const id = ctx.params[0]!;
      const expected = stringFlag(ctx.args, "expected-revision");
      const removed = await ctx.client().remove(id, {
        table: ctx.table,
        allowMissing: booleanFlag(ctx.args, "allow-missing"),
        ...(expected !== undefined ? { expectedRevision: parseCount(expected, "--expected-revision") } : {}),
      });
      ctx.print(
        { removed: removed !== undefined, session: removed === undefined ? null : sessionJson(removed) },
        removed === undefined ? `Session ${id} was not there; nothing removed.\n` : `Removed session ${id} (${removed.projectPath}).\n`,
      );
    },
  },
  {
    name: "watch",
    synopsis: "[--from REV [--table-uid UID]]",
    summary: "Stream a table's changes line by line until interrupted.",
    description:
      "From revision 0 (the default) the output starts with a snapshot of the table, then has one line per " +
      "change. With --from REV it has the changes from revision REV on, and no snapshot. Lines:\n\n" +
      "  rev=5 SNAPSHOT sessions=2\n" +
      "  rev=5 SESSION id=ID name=NAME path=PATH revision=4 [metadata=K=V,...] [expires=TIME]\n" +
      "  rev=6 REGISTERED|UPDATED|REMOVED|EXPIRED id=ID name=NAME path=PATH revision=6 ...\n\n" +
      "Values with spaces or quotes are JSON strings. With --json each line is a JSON object instead: " +
      '{"kind":"snapshot","revision":5,"tableUid":"...","resync":false,"sessions":[...]} or ' +
      '{"kind":"event","revision":6,"tableUid":"...","type":"REGISTERED","session":{...}}.\n\n' +
      "The watch reconnects by itself when the daemon goes away and comes back, continuing where it was, " +
      'and says so on stderr ("reconnecting...", then "resumed at revision N"). ' +
      "When it cannot (the daemon no longer has the history, or the table's history started over: a restarted " +
      "daemon with the memory store, the table deleted and made again, a wiped etcd), it prints a new snapshot " +
      "marked resync=true, which replaces everything printed before, and says so on stderr. To resume a " +
      "watch later, pass the last line's revision + 1 as --from and its tableUid as --table-uid. Ctrl-C " +
      "(SIGINT) or SIGTERM ends it with exit 0.",
    params: [],
    options: {
      from: { type: "string", value: "REV", help: "Start at this revision instead of a snapshot." },
      "table-uid": {
        type: "string",
        value: "UID",
        help: "With --from: the tableUid REV belongs to; from another history of the table, the watch resyncs.",
      },
    },
    table: true,
    valueField: "revision",
    examples: ["session-registry watch --table agents", "session-registry watch --json | jq -c 'select(.kind==\"event\")'"],
    async run(ctx) {
      const from = stringFlag(ctx.args, "from");
      const startRevision = from === undefined ? 0 : parseCount(from, "--from");
      const tableUid = stringFlag(ctx.args, "table-uid");
      if (tableUid !== undefined && startRevision === 0) throw new UsageError("--table-uid needs --from REV (above 0)");
      const client = ctx.client();
      // One ordinary call first, so that a wrong address, table or token
      // fails at once instead of being retried by the auto-resume.
      await client.getTable(ctx.table);
      const signal = ctx.interrupted();
      const options: WatchOptions = {
        table: ctx.table,
        startRevision,
        autoResume: true,
        signal,
        ...(tableUid !== undefined ? { tableUid } : {}),
        // A person watching sees why the feed paused, and that it goes on.
        onReconnect: (event) =>
          ctx.note(
            event.kind === "reconnecting"
              ? `session-registry: lost the watch (${watchLoss(event.error)}); reconnecting...\n`
              : event.revision === 0
                ? "session-registry: reconnected; the watch starts over with a snapshot\n"
                : `session-registry: resumed at revision ${event.revision}\n`,
          ),
      };
      for await (const item of client.watch(options)) {
        if (item.kind === "snapshot" && item.resync) {
          ctx.note(
            `session-registry: resynced at revision ${item.revision}: the watch could not continue where it was ` +
              `(the daemon no longer has that history, or the table's history started over); ` +
              `the snapshot that follows replaces everything printed before\n`,
          );
        }
        ctx.printLine(watchItemJson(item), watchItemLines(item));
      }
    },
  },
  {
    name: "keepalive",
    synopsis: "ID [--every DURATION]",
    summary: "Push a session's expiry to now + its ttl and print the new expiry.",
    description:
      "With --every the keep-alive repeats at that interval until Ctrl-C (SIGINT) or SIGTERM, which exit 0; " +
      "a failed keep-alive ends it with that error's exit code.",
    params: [{ name: "ID", required: true }],
    options: { every: { type: "string", value: "DURATION", help: "Repeat at this interval, e.g. 10s (a third of the ttl is usual)." } },
    table: true,
    valueField: "expireTime",
    examples: ["session-registry keepalive 3f2a…", "session-registry keepalive 3f2a… --every 20s"],
    async run(ctx) {
      const id = ctx.params[0]!;
      const every = stringFlag(ctx.args, "every");
      const intervalMs = every === undefined ? 0 : parseDuration(every, "--every");
      if (every !== undefined && intervalMs === 0) throw new UsageError("--every must be more than 0");
      // Only the repeating form waits for a signal; the one-shot form keeps the default Ctrl-C.
      const signal = every === undefined ? undefined : ctx.interrupted();
      for (;;) {
        const s = await ctx.client().keepAlive(id, { table: ctx.table });
        const text =
          s.ttl === undefined
            ? `Session ${s.id} has no ttl; it never expires.\n`
            : `Session ${s.id} expires at ${timeText(s.expireTime)} (ttl ${durationText(s.ttl)}).\n`;
        if (signal === undefined) {
          ctx.print(sessionJson(s), text);
          return;
        }
        ctx.printLine(sessionJson(s), text);
        await sleep(intervalMs, undefined, { signal }).catch(() => undefined);
        if (signal.aborted) return;
      }
    },
  },
];

/** Why a watch's call ended, in a few words for its stderr note. */
function watchLoss(error: SessionRegistryError | undefined): string {
  if (error === undefined) return "the daemon ended it";
  if (error.reason === ErrorReason.SHUTTING_DOWN) return "the daemon is shutting down";
  if (error.reason === ErrorReason.STORE_UNAVAILABLE) return "the registry's store is unavailable";
  if (error.reason === ErrorReason.WATCHER_TOO_SLOW) return "it fell behind";
  if (
    error.reason === ErrorReason.REVISION_COMPACTED ||
    error.reason === ErrorReason.TABLE_UID_MISMATCH ||
    error.reason === ErrorReason.FUTURE_REVISION
  ) {
    return "its position is not in the table's history any more";
  }
  return "the connection to the daemon broke";
}

export const COMMANDS_BY_NAME: ReadonlyMap<string, Command> = new Map(COMMANDS.map((c) => [c.name, c]));
