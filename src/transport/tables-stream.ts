/**
 * The WatchTables method: one server stream per tables watch, fed by the
 * Registry through a TablesSink, over the same WatchCall as Watch.
 *
 * Where a Watch queues every event, a tables watch coalesces: changes wait
 * as the latest state of each table that changed (or its deletion) and go
 * out together as one message, after the current I/O turn and, while the
 * wire pushes back, on its 'drain'. So a slow reader gets fewer, larger
 * messages and is never ended as too slow, and what waits for it is
 * bounded by the number of tables. A token restricted to some tables sees
 * those only: their changes are dropped here, before they wait.
 *
 * Every way a stream ends (the client, the store, a rejection, shutdown)
 * goes through TablesStream.finish, which runs once.
 */
import { RegistryError } from "../core/errors.js";
import type { Logger } from "../core/logger.js";
import type { Table } from "../core/model.js";
import type { Registry } from "../core/registry.js";
import type { TablesSink, WatchSubscription } from "../core/store.js";
import type { WatchTablesResponse } from "../gen/sessionregistry/v1/session_registry.js";
import { toProtoTable } from "./convert.js";
import { isAuthError, logRejection, type RpcRecorder } from "./status.js";
import { endStream, type WatchCall } from "./watch-stream.js";

const METHOD = "WatchTables" as const;

export interface TablesStreamsOptions {
  /** Checks the caller before anything else and returns the tables it may see (undefined: all); throws UNAUTHENTICATED or PERMISSION_DENIED. */
  authorize?: (call: WatchCall<WatchTablesResponse>) => ReadonlySet<string> | undefined;
  /** The INVALID_ARGUMENT for a request whose bytes did not decode; undefined for a decoded one. */
  malformed: (request: unknown) => RegistryError | undefined;
  /** Hears how each watch ended. */
  metrics?: RpcRecorder;
}

/** Serves WatchTables calls and knows the open ones, so that shutdown can end them. */
export class TablesStreams {
  private readonly open = new Set<TablesStream>();
  /** Set by endAll: watches that arrive later are ended with it at once. */
  private closing: RegistryError | undefined;

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly options: TablesStreamsOptions,
  ) {}

  /** Streams not yet ended by this side or the client. */
  get size(): number {
    return this.open.size;
  }

  /** The WatchTables handler. Never throws. */
  handle(call: WatchCall<WatchTablesResponse>): void {
    let visible: ReadonlySet<string> | undefined;
    let refusal: unknown;
    try {
      visible = this.options.authorize?.(call);
      refusal = this.options.malformed(call.request);
    } catch (err) {
      refusal = err;
    }
    const stream = new TablesStream(call, this.log, visible, this.options.metrics, (s) => this.open.delete(s));
    this.open.add(stream);
    if (refusal !== undefined) stream.reject(refusal);
    else if (this.closing !== undefined) stream.finish(this.closing);
    else stream.start(this.registry);
  }

  /** Ends every open tables watch with `error` (e.g. UNAVAILABLE at shutdown), and every later one too. */
  endAll(error: RegistryError): void {
    this.closing = error;
    for (const stream of [...this.open]) stream.finish(error);
  }
}

class TablesStream implements TablesSink {
  private subscription: WatchSubscription | undefined;
  private done = false;
  /** write() returned false: hold changes until 'drain'. */
  private blocked = false;
  /** The latest state of each table changed since the last message; null: deleted. */
  private readonly pending = new Map<string, Table | null>();
  /** The tables the watcher holds: a deletion is sent only for one of them. */
  private readonly known = new Set<string>();
  private flushing: NodeJS.Immediate | undefined;
  private readonly unlisten: () => void;

  constructor(
    private readonly call: WatchCall<WatchTablesResponse>,
    private readonly log: Logger,
    /** The tables the caller may see; undefined: all. */
    private readonly visible: ReadonlySet<string> | undefined,
    private readonly metrics: RpcRecorder | undefined,
    private readonly onFinished: (stream: TablesStream) => void,
  ) {
    this.unlisten = call.listen({ gone: () => this.finish(undefined), drain: () => this.drained() });
  }

  start(registry: Registry): void {
    registry.watchTables(this).then(
      (subscription) => {
        if (this.done) {
          subscription.cancel();
          return;
        }
        this.subscription = subscription;
        this.log.debug({ method: METHOD }, "watch started");
      },
      (err: unknown) => {
        if (!this.done) this.reject(err);
      },
    );
  }

  /** Ends a watch that never started, logging the rejection. */
  reject(err: unknown): void {
    if (err instanceof RegistryError)
      logRejection(this.log, isAuthError(err) ? { method: METHOD, peer: this.call.peer() } : { method: METHOD }, err);
    this.finish(err);
  }

  // TablesSink: called by the store, synchronously.

  snapshot(tables: Table[]): void {
    this.guarded(() => {
      const visible = tables.filter((t) => this.sees(t.name));
      for (const table of visible) this.known.add(table.name);
      this.write({ snapshot: true, tables: visible.map(toProtoTable), deletedTables: [] });
    });
  }

  changed(table: Table): void {
    if (this.sees(table.name)) this.guarded(() => this.hold(table.name, table));
  }

  deleted(name: string): void {
    if (this.sees(name)) this.guarded(() => this.hold(name, null));
  }

  end(error: RegistryError): void {
    this.log.debug({ method: METHOD, reason: error.reason }, "store ended the watch");
    this.finish(error);
  }

  /** Ends the stream, once: with `error` as its status, or (undefined) with none because the client left. */
  finish(error: unknown): void {
    if (this.done) return;
    this.done = true;
    this.pending.clear();
    this.known.clear();
    clearImmediate(this.flushing);
    this.unlisten();
    const subscription = this.subscription;
    this.subscription = undefined;
    this.onFinished(this);
    endStream(this.call, subscription, error, { log: this.log, metrics: this.metrics, fields: { method: METHOD } });
  }

  private sees(name: string): boolean {
    return this.visible === undefined || this.visible.has(name);
  }

  /** A sink must not throw: a bug here ends this watch (INTERNAL, logged) and nothing else. */
  private guarded(deliver: () => void): void {
    if (this.done) return;
    try {
      deliver();
    } catch (err) {
      this.finish(err);
    }
  }

  /** Keeps the latest state of a table until the next message, which goes after this I/O turn unless the wire pushes back. */
  private hold(name: string, table: Table | null): void {
    this.pending.set(name, table);
    if (!this.blocked && this.flushing === undefined) this.flushing = setImmediate(() => this.flush());
  }

  private drained(): void {
    this.blocked = false;
    this.flush();
  }

  /** Sends what waits as one message. */
  private flush(): void {
    this.flushing = undefined;
    if (this.done || this.blocked || this.pending.size === 0) return;
    const names = [...this.pending.keys()].sort(byteOrder);
    const message: WatchTablesResponse = { snapshot: false, tables: [], deletedTables: [] };
    for (const name of names) {
      const table = this.pending.get(name);
      if (table === null) {
        if (this.known.delete(name)) message.deletedTables.push(name);
      } else if (table !== undefined) {
        this.known.add(name);
        message.tables.push(toProtoTable(table));
      }
    }
    this.pending.clear();
    if (message.tables.length > 0 || message.deletedTables.length > 0) this.write(message);
  }

  private write(message: WatchTablesResponse): void {
    if (!this.call.write(message)) this.blocked = true;
  }
}

/** Names are ASCII, where UTF-16 order is byte order. */
function byteOrder(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
