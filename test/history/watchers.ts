/**
 * Watchers of every kind a user runs, for the history tests: the TypeScript
 * SDK's watch() with autoResume in this process, the Python SDK's watch()
 * with auto_resume in a child process (test/history/python_watcher.py), and
 * the CLI's `watch --json` as a child process. Each records the items it
 * got, in one shape (the CLI's JSON lines), and the sessions it holds after
 * applying them: a snapshot replaces what it held, events add, change and
 * drop sessions.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { eventTypeToJSON, SessionRegistryClient, type WatchItem } from "@session-registry/client";

import { REPO_ROOT, startCli, type CliProcess } from "../cli/cli-process.js";

export interface FeedSession {
  id: string;
  projectPath: string;
}

export type FeedItem =
  | { kind: "snapshot"; revision: number; tableUid: string; resync: boolean; sessions: FeedSession[] }
  | { kind: "event"; revision: number; tableUid: string; type: string; session: FeedSession };

export interface FeedWatcher {
  readonly kind: "sdk" | "python" | "cli";
  readonly items: FeedItem[];
  /** The error that ended the watch (its reason), if one did. */
  readonly error: string | undefined;
  /** What the watcher has told on stderr (the CLI's notes). */
  stderr(): string;
  /** The project paths the watcher holds now, sorted. */
  held(): string[];
  /** Resolves once `done` holds for the items so far; rejects if the watch ends first. */
  until(done: (w: FeedWatcher) => boolean): Promise<void>;
  close(): Promise<void>;
}

export interface WatchFrom {
  startRevision?: number;
  tableUid?: string;
}

/** The paths a sequence of items leaves a watcher holding. */
export function heldAfter(items: readonly FeedItem[]): string[] {
  const held = new Map<string, string>();
  for (const item of items) {
    if (item.kind === "snapshot") {
      held.clear();
      for (const s of item.sessions) held.set(s.id, s.projectPath);
    } else if (item.type === "REMOVED" || item.type === "EXPIRED") {
      held.delete(item.session.id);
    } else {
      held.set(item.session.id, item.session.projectPath);
    }
  }
  return [...held.values()].sort();
}

abstract class Recorder implements FeedWatcher {
  abstract readonly kind: "sdk" | "python" | "cli";
  readonly items: FeedItem[] = [];
  error: string | undefined;
  protected ended = false;
  private waiters: (() => void)[] = [];

  stderr(): string {
    return "";
  }

  held(): string[] {
    return heldAfter(this.items);
  }

  async until(done: (w: FeedWatcher) => boolean): Promise<void> {
    while (!done(this)) {
      if (this.ended) {
        throw new Error(
          `the ${this.kind} watcher ended (${this.error ?? "no error"}) before the condition held; items: ${JSON.stringify(this.items)}`,
        );
      }
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
  }

  abstract close(): Promise<void>;

  protected push(item: FeedItem): void {
    this.items.push(item);
    this.wake();
  }

  protected end(error: string | undefined): void {
    this.error = error;
    this.ended = true;
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

class SdkWatcher extends Recorder {
  readonly kind = "sdk";
  private readonly client: SessionRegistryClient;
  private readonly done: Promise<void>;

  constructor(address: string, table: string, from: WatchFrom) {
    super();
    // Fast channel reconnects, so that a daemon back on its port is found again at once.
    this.client = new SessionRegistryClient(address, {
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 50, "grpc.max_reconnect_backoff_ms": 200 },
    });
    const stream = this.client.watch({ table, ...from, autoResume: true, backoff: { initialMs: 20, maxMs: 200 } });
    this.done = (async () => {
      try {
        for await (const item of stream) this.push(sdkItem(item));
        this.end(undefined);
      } catch (err) {
        this.end((err as { reason?: string }).reason || String(err));
      }
    })();
  }

  async close(): Promise<void> {
    this.client.close();
    await this.done;
  }
}

function sdkItem(item: WatchItem): FeedItem {
  const s = (x: { id: string; projectPath: string }): FeedSession => ({ id: x.id, projectPath: x.projectPath });
  return item.kind === "snapshot"
    ? { kind: "snapshot", revision: item.revision, tableUid: item.tableUid, resync: item.resync, sessions: item.sessions.map(s) }
    : {
        kind: "event",
        revision: item.revision,
        tableUid: item.tableUid,
        type: eventTypeToJSON(item.type).replace(/^EVENT_TYPE_/, ""),
        session: s(item.session),
      };
}

/** A child process that prints one JSON item per line (the CLI's `watch --json` shape). */
abstract class LineWatcher extends Recorder {
  private partial = "";

  protected consume(chunk: string): void {
    this.partial += chunk;
    let nl: number;
    while ((nl = this.partial.indexOf("\n")) >= 0) {
      const line = this.partial.slice(0, nl);
      this.partial = this.partial.slice(nl + 1);
      if (line.trim() === "") continue;
      const parsed = JSON.parse(line) as FeedItem | { error: unknown };
      if ("error" in parsed) this.error = JSON.stringify(parsed.error);
      else this.push(parsed);
    }
  }
}

class PythonWatcher extends LineWatcher {
  readonly kind = "python";
  private readonly child: ChildProcess;
  private err = "";
  private readonly exited: Promise<void>;

  constructor(address: string, table: string, from: WatchFrom) {
    super();
    const args = ["test/history/python_watcher.py", address, table];
    if (from.startRevision !== undefined) args.push(String(from.startRevision), from.tableUid ?? "");
    this.child = spawn("/usr/bin/python3", args, { cwd: REPO_ROOT, stdio: ["ignore", "pipe", "pipe"] });
    this.child.stdout!.setEncoding("utf8").on("data", (chunk: string) => this.consume(chunk));
    this.child.stderr!.setEncoding("utf8").on("data", (chunk: string) => (this.err += chunk));
    this.exited = new Promise((resolve) => this.child.on("close", () => resolve()));
    void this.exited.then(() => this.end(this.error ?? (this.err === "" ? undefined : this.err)));
  }

  override stderr(): string {
    return this.err;
  }

  async close(): Promise<void> {
    this.child.kill("SIGTERM");
    await this.exited;
  }
}

class CliWatcher extends LineWatcher {
  readonly kind = "cli";
  private readonly cli: CliProcess;
  private seen = 0;

  constructor(address: string, table: string, from: WatchFrom) {
    super();
    const args = ["watch", "--json", "--addr", address, "--table", table];
    if (from.startRevision !== undefined) args.push("--from", String(from.startRevision));
    if (from.tableUid !== undefined) args.push("--table-uid", from.tableUid);
    this.cli = startCli(args);
    this.cli.child.stdout!.on("data", () => {
      const out = this.cli.stdout();
      this.consume(out.slice(this.seen));
      this.seen = out.length;
    });
    void this.cli.exited.then((r) => this.end(r.code === 0 ? undefined : r.stderr));
  }

  override stderr(): string {
    return this.cli.stderr();
  }

  async close(): Promise<void> {
    this.cli.child.kill("SIGINT");
    await this.cli.exited;
  }
}

export type WatcherKind = FeedWatcher["kind"];
export const WATCHER_KINDS: readonly WatcherKind[] = ["sdk", "python", "cli"];

export function startWatcher(kind: WatcherKind, address: string, table: string, from: WatchFrom = {}): FeedWatcher {
  switch (kind) {
    case "sdk":
      return new SdkWatcher(address, table, from);
    case "python":
      return new PythonWatcher(address, table, from);
    case "cli":
      return new CliWatcher(address, table, from);
  }
}

/**
 * What every history test asks of a watcher once the table's history has
 * started over: it got a snapshot marked resync, nothing of the new history
 * came before that snapshot, and it ends up holding exactly `expected`.
 */
export async function resyncedTo(w: FeedWatcher, oldUid: string, expected: readonly string[]): Promise<void> {
  const want = [...expected].sort();
  await w.until((x) => x.items.some((i) => i.kind === "snapshot" && i.resync) && sameList(x.held(), want));
  const firstNew = w.items.findIndex((i) => i.tableUid !== oldUid);
  const item = w.items[firstNew];
  if (item === undefined || item.kind !== "snapshot" || !item.resync) {
    throw new Error(`the ${w.kind} watcher's first item of the new history is not a resync snapshot: ${JSON.stringify(w.items)}`);
  }
}

/** A Session message to register at `projectPath`, the rest left to the daemon. */
export function newSession(projectPath: string) {
  return {
    id: "",
    name: "",
    projectPath,
    metadata: new Map<string, string>(),
    createTime: undefined,
    updateTime: undefined,
    revision: 0,
    ttl: undefined,
    expireTime: undefined,
    tableUid: "",
  };
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
