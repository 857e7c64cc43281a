/**
 * WatchTables as an async iterable: every table with its session count,
 * kept current. Each item is the whole list as it stands after one message,
 * with what that message changed, so a consumer may redraw everything or
 * apply the change. With `autoResume` a dropped call is opened again and
 * its snapshot replaces what the stream held: the item says so
 * (`snapshot: true`) and lists as deleted every table that went meanwhile.
 */
import type { ClientReadableStream } from "@grpc/grpc-js";

import type { SessionRegistryError } from "./errors.js";
import type { Table, WatchTablesResponse } from "./gen/sessionregistry/v1/session_registry.js";
import { ResumingStream, transient, type ResumeOptions, type ResumingHooks } from "./resuming.js";

/** One item of a tables watch. */
export interface TablesUpdate {
  /** Every table now, in name order. */
  tables: Table[];
  /** The tables this update created or changed (on a snapshot: every table). */
  changed: Table[];
  /** The names of the tables this update deleted. */
  deleted: string[];
  /** True for the first item, and (autoResume) for the first after a reconnect: `tables` replaces all you held. */
  snapshot: boolean;
}

export type TablesWatchOptions = ResumeOptions;

/** A live tables watch: iterate it once with `for await`; `break` or close() cancels the call. */
export interface TablesWatchStream extends AsyncIterable<TablesUpdate> {
  /** Cancels the call; the iteration ends cleanly (no error). Idempotent. */
  close(): void;
}

export class TablesWatchImpl extends ResumingStream<WatchTablesResponse, TablesUpdate> implements TablesWatchStream {
  private readonly held = new Map<string, Table>();

  constructor(
    private readonly open: () => ClientReadableStream<WatchTablesResponse>,
    options: TablesWatchOptions,
    hooks: ResumingHooks,
  ) {
    super("a TablesWatchStream", options, hooks);
  }

  protected openCall(): ClientReadableStream<WatchTablesResponse> {
    return this.open();
  }

  protected resumesAt(): number {
    return 0;
  }

  protected accept(message: WatchTablesResponse): TablesUpdate {
    let deleted = message.deletedTables;
    if (message.snapshot) {
      const listed = new Set(message.tables.map((t) => t.name));
      deleted = [...this.held.keys()].filter((name) => !listed.has(name));
    }
    if (message.snapshot) this.held.clear();
    for (const name of deleted) this.held.delete(name);
    for (const table of message.tables) this.held.set(table.name, table);
    const tables = [...this.held.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { tables, changed: message.tables, deleted, snapshot: message.snapshot };
  }

  protected recover(err: SessionRegistryError): "retry" | "throw" {
    return transient(err) ? "retry" : "throw";
  }
}
