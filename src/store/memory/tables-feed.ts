/**
 * The memory store's tables watches. Each sink hears a table's new state in
 * the same synchronous turn as the write that made it, so states arrive in
 * the order they were reached, none skipped, and a snapshot taken in one
 * turn with the subscription misses nothing.
 */
import type { RegistryError } from "../../core/errors.js";
import type { Table } from "../../core/model.js";
import type { TablesSink, WatchSubscription } from "../../core/store.js";

export class TablesFeed {
  private readonly sinks = new Set<TablesSink>();

  /** Whether anyone listens: the store builds a table's state only then. */
  get listening(): boolean {
    return this.sinks.size > 0;
  }

  /** Hands `sink` the snapshot `tables`, then every later change until cancelled. */
  subscribe(sink: TablesSink, tables: Table[]): WatchSubscription {
    sink.snapshot(tables);
    this.sinks.add(sink);
    return { cancel: () => this.sinks.delete(sink) };
  }

  changed(table: Table): void {
    for (const sink of this.sinks) sink.changed(table);
  }

  deleted(name: string): void {
    for (const sink of this.sinks) sink.deleted(name);
  }

  /** Ends every watch with `error` (the store is closing). */
  endAll(error: RegistryError): void {
    const sinks = [...this.sinks];
    this.sinks.clear();
    for (const sink of sinks) sink.end(error);
  }
}
