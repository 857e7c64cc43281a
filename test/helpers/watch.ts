/**
 * A Watch stream over the generated stubs that records every message, for
 * tests that check exactly what went over the wire. Waits are bounded and
 * wait for a condition, never for a time.
 */
import type { ClientReadableStream, ServiceError } from "@grpc/grpc-js";
import {
  EventType,
  type Session,
  type WatchResponse,
  type SessionRegistryClient as GeneratedClient,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";

export interface RecordedEvent {
  revision: number;
  type: EventType;
  session: Session;
}

export class RecordedWatch {
  readonly messages: WatchResponse[] = [];
  error: ServiceError | undefined;
  ended = false;
  /** The call itself, for tests that pause, resume or cancel it. */
  readonly call: ClientReadableStream<WatchResponse>;
  private waiters: (() => void)[] = [];

  constructor(client: GeneratedClient, table: string, startRevision = 0, tableUid = "") {
    this.call = client.watch({ table, startRevision, tableUid });
    this.call.on("data", (m: WatchResponse) => {
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

  /** Resolves once `done()` holds; rejects if the stream ends first or `ms` pass. */
  async until(done: (w: RecordedWatch) => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done(this)) {
      if (this.ended) throw new Error(`watch ended (${this.error?.details ?? "no error"}) before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for ${what}; got ${this.messages.length} messages`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** Resolves with the status the stream ended with (undefined for a clean end). */
  async ending(ms = 10_000): Promise<ServiceError | undefined> {
    const deadline = Date.now() + ms;
    while (!this.ended) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out after ${ms} ms waiting for the watch to end`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.error;
  }

  cancel(): void {
    this.call.cancel();
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
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
