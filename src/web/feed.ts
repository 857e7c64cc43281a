/**
 * One table's sessions kept live through Watch: a snapshot, then events,
 * resumed after a dropped stream from the last revision with its table_uid.
 * When the daemon says the position belongs to another history
 * (TABLE_UID_MISMATCH, FUTURE_REVISION) or is gone (REVISION_COMPACTED), the
 * feed forgets what it holds and starts again from a snapshot, so it never
 * keeps a session the daemon no longer has. Free of the DOM.
 */
import { EventType, type Session, type WatchRequest, type WatchResponse } from "../gen/sessionregistry/v1/session_registry_pb.js";
import { Code, type Failure } from "./failure.js";
import { LiveStream, refusedForGood, type Recovery } from "./live.js";

/** The part of the client the feed uses. */
export interface Watcher {
  watch(request: Partial<WatchRequest>, options: { signal: AbortSignal }): AsyncIterable<WatchResponse>;
}

export class TableFeed extends LiveStream<WatchResponse> {
  /** The table's sessions, oldest first (a Map keeps the snapshot's order and appends new ones). */
  readonly sessions = new Map<string, Session>();
  revision = 0n;
  tableUid = "";

  constructor(
    private readonly client: Watcher,
    readonly table: string,
    changed: () => void,
  ) {
    super(changed);
    this.start();
  }

  protected open(signal: AbortSignal): AsyncIterable<WatchResponse> {
    const request: Partial<WatchRequest> =
      this.revision > 0n
        ? { table: this.table, startRevision: this.revision + 1n, tableUid: this.tableUid }
        : { table: this.table, startRevision: 0n };
    return this.client.watch(request, { signal });
  }

  protected recover(f: Failure): Recovery {
    switch (f.reason) {
      case "TABLE_UID_MISMATCH":
      case "FUTURE_REVISION":
      case "REVISION_COMPACTED":
        // Another history, or a position no longer served: start over from a snapshot.
        this.forget();
        return "again";
      case "WATCHER_TOO_SLOW": {
        const resume = BigInt(f.metadata.resume_revision ?? "0");
        if (resume > 0n) this.revision = resume - 1n;
        else this.forget();
        return "again";
      }
    }
    return f.code === Code.NotFound || refusedForGood(f) ? "stop" : "backoff";
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

  protected apply(message: WatchResponse): void {
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
  protected forget(): void {
    this.sessions.clear();
    this.revision = 0n;
    this.tableUid = "";
  }
}
