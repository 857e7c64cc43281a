/**
 * The etcd store: every table lives in an etcd cluster under one key prefix,
 * so any number of stateless daemons share the tables, their limits and one
 * change feed. This class is the Store the daemon holds; the work is done
 * by rooms it composes, split as etcd splits its own mvcc and lease code:
 *
 *   kv.ts        the connection: reads, Txns, failures, the bounded retry
 *   keys.ts      the key layout; codec.ts the values; ops.ts the requests
 *   tables.ts    the table calls, the table cache, table_uid and revisions
 *   register.ts  Register and the exact session limit (slots)
 *   slots.ts     which slot a Register tries first
 *   writes.ts    Update, Remove, KeepAlive
 *   reads.ts     Lookup, List, read from etcd
 *   read-cache.ts  the same reads and the table reads, from a watch-fed mirror (mirror.ts), linearizable
 *   revision-probe.ts  etcd's revision, which read-cache.ts waits for, over an HTTP/2 connection of its own
 *   leases.ts    leases for ttls: grant, renew, revoke
 *   requests.ts  request_id records and their retention lease
 *   watches.ts   Watch calls; watch.ts one watch; events.ts the feed mapping
 *   history.ts   what history etcd still serves (retention, compaction)
 *   expiry.ts    the expiry watch and the table revision bumps after it
 *   tables-watch.ts  WatchTables: a prefix watch that says what to read again
 *
 * Each room says where the etcd store differs from the memory store, as the
 * docs/etcd.md's "Where etcd differs from the memory store" sums up.
 */
import type { LookupKey, NewSession, Session, SessionPage, SessionPatch, Table } from "../../core/model.js";
import type {
  Store,
  StoreLimits,
  StoreObserver,
  TablesSink,
  WatchSink,
  WatchStart,
  WatchSubscription,
  WriteConditions,
} from "../../core/store.js";
import { shuttingDown } from "../../core/errors.js";
import { ExpiryWatch } from "./expiry.js";
import { HistoryProbes } from "./history.js";
import { Keys } from "./keys.js";
import { EtcdKv, type EtcdCalls, type EtcdKvOptions } from "./kv.js";
import { Leases } from "./leases.js";
import type { Mirror } from "./mirror.js";
import { ReadCache } from "./read-cache.js";
import { SessionReads } from "./reads.js";
import { Registrar } from "./register.js";
import { RequestLeases } from "./requests.js";
import { SlotHints } from "./slots.js";
import { Tables } from "./tables.js";
import { TablesWatch } from "./tables-watch.js";
import { Watches } from "./watches.js";
import { SessionWrites } from "./writes.js";

export interface EtcdStoreOptions extends EtcdKvOptions {
  /** Every key of this store starts with it, e.g. "/session-registry/"; a "/" is appended when missing. */
  prefix: string;
  /** Told of expirations (metrics, logs). */
  observer?: StoreObserver;
  /** Serve Lookup, List, GetTable and ListTables from a watch-fed copy of the prefix (read-cache.ts); default true. */
  readCache?: boolean;
}

export class EtcdStore implements Store {
  private readonly kv: EtcdKv;
  private readonly tables: Tables;
  private readonly registrar: Registrar;
  private readonly writes: SessionWrites;
  private readonly reads: SessionReads;
  private readonly watches: Watches;
  private readonly expiries: ExpiryWatch;
  private readonly tablesWatch: TablesWatch;
  private readonly cache: ReadCache | undefined;
  private closed = false;

  constructor(limits: StoreLimits, options: EtcdStoreOptions) {
    const prefix = options.prefix.endsWith("/") ? options.prefix : `${options.prefix}/`;
    this.kv = new EtcdKv(new Keys(prefix), options);
    const leases = new Leases(this.kv);
    const requestLeases = new RequestLeases(leases);
    this.tables = new Tables(this.kv, leases, limits);
    const slots = new SlotHints(this.kv.keys);
    this.registrar = new Registrar(this.kv, this.tables, leases, requestLeases, slots);
    this.writes = new SessionWrites(this.kv, this.tables, leases, requestLeases);
    this.reads = new SessionReads(this.kv, this.tables);
    this.watches = new Watches(this.kv, new HistoryProbes(this.kv, limits.watchHistory));
    this.expiries = new ExpiryWatch(this.kv, options.observer, slots);
    this.tablesWatch = new TablesWatch(this.kv, this.tables);
    this.cache = options.readCache === false ? undefined : new ReadCache(this.kv);
  }

  createTable(name: string, maxSessions: number | undefined): Promise<{ table: Table; created: boolean }> {
    return this.tables.create(name, maxSessions);
  }

  getTable(name: string): Promise<Table> {
    return this.read(
      (m) => m.getTable(name),
      () => this.tables.get(name),
    );
  }

  listTables(): Promise<Table[]> {
    return this.read(
      (m) => m.listTables(),
      () => this.tables.list(),
    );
  }

  deleteTable(name: string, force: boolean): Promise<void> {
    return this.tables.delete(name, force);
  }

  register(tableName: string, input: NewSession, requestId?: string): Promise<Session> {
    return this.registrar.register(tableName, input, requestId);
  }

  lookup(tableName: string, key: LookupKey): Promise<Session> {
    return this.read(
      (m) => m.lookup(tableName, key),
      () => this.reads.lookup(tableName, key),
    );
  }

  list(tableName: string, after: string | undefined, limit: number): Promise<SessionPage> {
    return this.read(
      (m) => m.list(tableName, after, limit),
      () => this.reads.list(tableName, after, limit),
    );
  }

  update(tableName: string, id: string, patch: SessionPatch, conditions: WriteConditions): Promise<Session> {
    return this.writes.update(tableName, id, patch, conditions);
  }

  remove(tableName: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined> {
    return this.writes.remove(tableName, id, conditions);
  }

  keepAlive(tableName: string, id: string): Promise<Session> {
    return this.writes.keepAlive(tableName, id);
  }

  watch(tableName: string, start: WatchStart, sink: WatchSink): Promise<WatchSubscription> {
    return this.watches.watch(tableName, start, sink);
  }

  /** A read answered by the read cache when it can serve, else by etcd. */
  private async read<T>(fromCache: (mirror: Mirror) => T, fromEtcd: () => Promise<T>): Promise<T> {
    const cached = await this.cache?.serve(fromCache);
    return cached !== undefined ? cached.value : fromEtcd();
  }

  watchTables(sink: TablesSink): Promise<WatchSubscription> {
    return this.tablesWatch.subscribe(sink);
  }

  /**
   * Loads the read cache unless it is loaded; resolves whether reads are
   * served from it now (false without a cache, or when etcd did not answer).
   */
  async readCacheReady(): Promise<boolean> {
    return (await this.cache?.ready()) ?? false;
  }

  /** The calls this store has made to etcd so far, by kind (a copy): round trips per operation. */
  calls(): EtcdCalls {
    return { ...this.kv.calls };
  }

  /**
   * Whether etcd serves this store right now, for the daemon's health: one
   * linearizable Range of one key (so it needs a leader), with a deadline of
   * its own. Resolves when etcd answered; rejects with UNAVAILABLE
   * (STORE_UNAVAILABLE) when not. It runs on the store's own connection, so
   * it sees what calls see (etcd3's circuit breaker included).
   */
  async probe(timeoutMs = 1_000): Promise<void> {
    if (this.closed) throw shuttingDown();
    try {
      await this.kv.client.kv.range({ key: Buffer.from(this.kv.keys.tablesEpoch), count_only: true }, { deadline: Date.now() + timeoutMs });
    } catch (err) {
      throw this.kv.errors.toStoreError(err);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const stopping = [...this.watches.endAll(), this.expiries.stop(), this.tablesWatch.stop(), this.cache?.stop() ?? Promise.resolve()];
    // Cancelling needs etcd; an unreachable one must not hold shutdown.
    await Promise.race([Promise.allSettled(stopping), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    this.kv.close();
  }
}
