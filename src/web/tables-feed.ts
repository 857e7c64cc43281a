/**
 * Every table with its count, kept live through WatchTables: a snapshot,
 * then the latest state of each table that changed. A new stream starts
 * with a snapshot that replaces what the feed holds, so after a drop (a
 * restarted daemon included) it never keeps a table that is gone. Free of
 * the DOM.
 */
import type { Table, WatchTablesRequest, WatchTablesResponse } from "../gen/sessionregistry/v1/session_registry_pb.js";
import type { Failure } from "./failure.js";
import { LiveStream, refusedForGood, type Recovery } from "./live.js";

/** The part of the client the feed uses. */
export interface TablesWatcher {
  watchTables(request: Partial<WatchTablesRequest>, options: { signal: AbortSignal }): AsyncIterable<WatchTablesResponse>;
}

export class TablesFeed extends LiveStream<WatchTablesResponse> {
  private readonly byName = new Map<string, Table>();
  /** The tables in name order; rebuilt when the set changes. */
  private sorted: Table[] | undefined;

  constructor(
    private readonly client: TablesWatcher,
    changed: () => void,
  ) {
    super(changed);
    this.start();
  }

  /** Every table held, in name (byte) order. */
  get tables(): readonly Table[] {
    this.sorted ??= [...this.byName.values()].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return this.sorted;
  }

  has(name: string): boolean {
    return this.byName.has(name);
  }

  protected open(signal: AbortSignal): AsyncIterable<WatchTablesResponse> {
    return this.client.watchTables({}, { signal });
  }

  protected apply(message: WatchTablesResponse): void {
    if (message.snapshot) this.byName.clear();
    for (const name of message.deletedTables) this.byName.delete(name);
    for (const table of message.tables) this.byName.set(table.name, table);
    this.sorted = undefined;
  }

  protected recover(f: Failure): Recovery {
    return refusedForGood(f) ? "stop" : "backoff";
  }

  protected forget(): void {
    this.byName.clear();
    this.sorted = undefined;
  }
}
