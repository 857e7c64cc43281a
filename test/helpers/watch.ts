/**
 * Watch and WatchTables streams over the generated stubs that record every
 * message, for tests that check exactly what went over the wire. Waits are
 * bounded and wait for a condition, never for a time.
 */
import type { ClientReadableStream, ServiceError } from "@grpc/grpc-js";
import {
  EventType,
  type Session,
  type Table,
  type WatchResponse,
  type WatchTablesResponse,
  type SessionRegistryClient as GeneratedClient,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";

export interface RecordedEvent {
  revision: number;
  type: EventType;
  session: Session;
}

/** A server stream's messages as they arrive, and how it ended. */
class RecordedStream<M> {
  readonly messages: M[] = [];
  error: ServiceError | undefined;
  ended = false;
  private waiters: (() => void)[] = [];

  /** `call` is the call itself, for tests that pause, resume or cancel it. */
  constructor(readonly call: ClientReadableStream<M>) {
    this.call.on("data", (m: M) => {
      this.received(m);
      this.messages.push(m);
      this.wake();
    });
    this.call.on("error", (err: ServiceError) => {
      this.error = err;
      this.ended = true;
      this.wake();
    });
    this.call.on("end", () => {
      this.ended = true;
      this.wake();
    });
  }

  /** Sees each message before it is recorded. */
  protected received(_message: M): void {
    // Nothing by default.
  }

  /** Resolves once `done()` holds; rejects if the stream ends first or `ms` pass. */
  async until(done: (w: this) => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done(this)) {
      if (this.ended) throw new Error(`stream ended (${this.error?.details ?? "no error"}) before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; got ${this.messages.length} messages`);
      await this.wait(left);
    }
  }

  /** Resolves with the status the stream ended with (undefined for a clean end). */
  async ending(ms = 10_000): Promise<ServiceError | undefined> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for the stream to end`);
      await this.wait(left);
    }
    return this.error;
  }

  cancel(): void {
    this.call.cancel();
  }

  private wait(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.waiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}

export class RecordedWatch extends RecordedStream<WatchResponse> {
  constructor(client: GeneratedClient, table: string, startRevision = 0, tableUid = "") {
    super(client.watch({ table, startRevision, tableUid }));
  }

  /** Revisions of the events received so far (snapshots left out). */
  get eventRevisions(): number[] {
    return this.events.map((e) => e.revision);
  }

  get events(): RecordedEvent[] {
    const out: RecordedEvent[] = [];
    for (const m of this.messages) {
      if (m.kind?.$case === "event" && m.kind.value.session !== undefined) {
        out.push({ revision: m.revision, type: m.kind.value.type, session: m.kind.value.session });
      }
    }
    return out;
  }
}

/**
 * A WatchTables stream and the tables it shows: each message applied as a
 * client must apply it. What no message may do is recorded in `broken`: a
 * snapshot after the first message, a name both changed and deleted, a
 * deletion of a table it does not hold, a table of the same history going
 * back in revision.
 */
export class RecordedTables extends RecordedStream<WatchTablesResponse> {
  readonly tables = new Map<string, Table>();
  readonly broken: string[] = [];

  constructor(client: GeneratedClient) {
    super(client.watchTables({}));
  }

  /** The session count it shows for `table`; undefined when it shows no such table. */
  count(table: string): number | undefined {
    return this.tables.get(table)?.sessionCount;
  }

  protected override received(m: WatchTablesResponse): void {
    if (m.snapshot !== (this.messages.length === 0)) this.broken.push(`message ${this.messages.length} has snapshot=${m.snapshot}`);
    if (m.snapshot) this.tables.clear();
    for (const name of m.deletedTables) {
      if (m.tables.some((t) => t.name === name)) this.broken.push(`${name} both changed and deleted`);
      if (!this.tables.delete(name)) this.broken.push(`${name} deleted but not held`);
    }
    for (const table of m.tables) {
      const before = this.tables.get(table.name);
      if (before !== undefined && before.tableUid === table.tableUid && table.revision < before.revision) {
        this.broken.push(`${table.name} went back from revision ${before.revision} to ${table.revision}`);
      }
      this.tables.set(table.name, table);
    }
  }
}

/** Starts a RecordedWatch (on `on`, default the suite's client) that the suite cancels after each test. */
export interface SuiteWatches {
  (table: string, startRevision?: number, on?: GeneratedClient): RecordedWatch;
  /** Cancels every watch started so far; also run after each test. */
  cancelAll(): void;
}

/**
 * For a describe block: watches that never outlive their test. `client` is
 * read at each start, so it may be one the block's `before` makes.
 */
export function suiteWatches(client: () => GeneratedClient): SuiteWatches {
  const open: RecordedWatch[] = [];
  const watch = ((table: string, startRevision = 0, on = client()) => {
    const w = new RecordedWatch(on, table, startRevision);
    open.push(w);
    return w;
  }) as SuiteWatches;
  watch.cancelAll = () => {
    for (const w of open.splice(0)) w.cancel();
  };
  afterEach(() => watch.cancelAll());
  return watch;
}

export { EventType };
