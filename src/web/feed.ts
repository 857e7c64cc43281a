/**
 * One table's sessions kept live through Watch: a snapshot, then events,
 * resumed after a dropped stream from the last revision with its table_uid.
 * When the daemon says the position belongs to another history
 * (TABLE_UID_MISMATCH, FUTURE_REVISION) or is gone (REVISION_COMPACTED), the
 * feed forgets what it holds and starts again from a snapshot, so it never
 * keeps a session the daemon no longer has. Free of the DOM.
 */
import { EventType, type Session, type WatchRequest, type WatchResponse } from "../gen/sessionregistry/v1/session_registry_pb.js";
import { Code, failure, type Failure } from "./failure.js";

/** The part of the client the feed uses. */
export interface Watcher {
  watch(request: Partial<WatchRequest>, options: { signal: AbortSignal }): AsyncIterable<WatchResponse>;
}

export type FeedState =
  /** Waiting for the first message of a stream. */
  | { kind: "connecting" }
  /** Streaming: what the feed holds is the table at `revision`. */
  | { kind: "live" }
  /** The stream dropped; `retryAt` (epoch ms) is the next attempt. What the feed holds may be stale. */
  | { kind: "disconnected"; retryAt: number; failure: Failure }
  /** The daemon refused for good (table deleted, token missing or refused): the feed stops. */
  | { kind: "stopped"; failure: Failure };

const RETRY_FIRST_MS = 250;
const RETRY_MAX_MS = 5000;

export class TableFeed {
  /** The table's sessions, oldest first (a Map keeps the snapshot's order and appends new ones). */
  readonly sessions = new Map<string, Session>();
  revision = 0n;
  tableUid = "";
  state: FeedState = { kind: "connecting" };
  private readonly abort = new AbortController();
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private wake: (() => void) | undefined;

  constructor(
    private readonly client: Watcher,
    readonly table: string,
    /** Called after every change of the sessions or the state. */
    private readonly changed: () => void,
  ) {
    void this.run();
  }

  stop(): void {
    this.abort.abort();
    clearTimeout(this.retryTimer);
    this.wake?.();
  }

  /** Retries now instead of at the backoff's time (the user asked, or the network came back). */
  retryNow(): void {
    this.wake?.();
  }

  /** Read through a call: the checker would take the loop's test as still holding after an await. */
  private stopped(): boolean {
    return this.abort.signal.aborted;
  }

  private set(state: FeedState): void {
    this.state = state;
    this.changed();
  }

  private async run(): Promise<void> {
    let delay = RETRY_FIRST_MS;
    const signal = this.abort.signal;
    while (!signal.aborted) {
      const resuming = this.revision > 0n;
      const request: Partial<WatchRequest> = resuming
        ? { table: this.table, startRevision: this.revision + 1n, tableUid: this.tableUid }
        : { table: this.table, startRevision: 0n };
      try {
        for await (const message of this.client.watch(request, { signal })) {
          this.apply(message);
          delay = RETRY_FIRST_MS;
          if (this.state.kind !== "live") this.state = { kind: "live" };
          this.changed();
        }
        // The daemon ended the stream (it is shutting down): resume as after a drop.
        if (this.stopped()) return;
        await this.backoff(delay, { code: Code.Unavailable, reason: "", metadata: {}, message: "the stream ended" });
      } catch (err) {
        if (this.stopped()) return;
        const f = failure(err);
        switch (f.reason) {
          case "TABLE_UID_MISMATCH":
          case "FUTURE_REVISION":
          case "REVISION_COMPACTED":
            // Another history, or a position no longer served: start over from a snapshot.
            this.forget();
            continue;
          case "WATCHER_TOO_SLOW": {
            const resume = BigInt(f.metadata.resume_revision ?? "0");
            if (resume > 0n) this.revision = resume - 1n;
            else this.forget();
            continue;
          }
        }
        if (
          f.code === Code.NotFound ||
          f.code === Code.Unauthenticated ||
          f.code === Code.PermissionDenied ||
          f.code === Code.InvalidArgument
        ) {
          this.forget();
          this.set({ kind: "stopped", failure: f });
          return;
        }
        await this.backoff(delay, f);
      }
      delay = Math.min(delay * 2, RETRY_MAX_MS);
    }
  }

  /**
   * Takes a fresher copy of a session read outside the stream (a Lookup):
   * KeepAlive moves `expire_time` without an event, so a countdown that ran
   * out while the session lives is read again. A copy older than what the
   * stream brought, or of a session the stream has since dropped, is ignored.
   */
  refresh(session: Session): void {
    const held = this.sessions.get(session.id);
    if (held === undefined || session.tableUid !== this.tableUid || session.revision < held.revision) return;
    const same = (a: Session["expireTime"], b: Session["expireTime"]) => a?.seconds === b?.seconds && a?.nanos === b?.nanos;
    if (session.revision === held.revision && same(session.expireTime, held.expireTime)) return;
    this.sessions.set(session.id, session);
    this.changed();
  }

  private apply(message: WatchResponse): void {
    if (message.kind.case === "snapshot") {
      this.sessions.clear();
      for (const s of message.kind.value.sessions) this.sessions.set(s.id, s);
    } else if (message.kind.case === "event") {
      const { type, session } = message.kind.value;
      if (session !== undefined) {
        if (type === EventType.REMOVED || type === EventType.EXPIRED) this.sessions.delete(session.id);
        else this.sessions.set(session.id, session);
      }
    }
    this.revision = message.revision;
    this.tableUid = message.tableUid;
  }

  /** Drops everything held: the next stream starts with a snapshot. */
  private forget(): void {
    this.sessions.clear();
    this.revision = 0n;
    this.tableUid = "";
  }

  private backoff(ms: number, f: Failure): Promise<void> {
    this.set({ kind: "disconnected", retryAt: Date.now() + ms, failure: f });
    return new Promise((resolve) => {
      this.wake = () => {
        clearTimeout(this.retryTimer);
        this.wake = undefined;
        resolve();
      };
      this.retryTimer = setTimeout(this.wake, ms);
    });
  }
}
