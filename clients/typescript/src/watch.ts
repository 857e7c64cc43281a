/**
 * Watch as an async iterable. Each WatchStream owns at most one grpc-js call
 * at a time (./resuming.ts); with `autoResume` it opens the next one itself,
 * from where the consumer is, so a consumer sees one ordered feed across reconnects:
 * transient failures and WATCHER_TOO_SLOW resume from `lastRevision + 1`
 * with the table_uid of that revision, and a lost position (compacted
 * history, or a table whose history started over: a restarted daemon, a
 * table made again, a wiped etcd) becomes a fresh snapshot marked
 * `resync: true`.
 */
import { type ClientReadableStream, status } from "@grpc/grpc-js";
import type { EventType, Session, WatchResponse } from "./gen/sessionregistry/v1/session_registry.js";
import { HistoryChangedError, RevisionCompactedError, SessionRegistryError, WatcherTooSlowError } from "./errors.js";
import { ResumingStream, transient, type ResumeOptions, type ResumingHooks } from "./resuming.js";

export { WATCH_HIGH_WATER_MARK, type WatchReconnectEvent } from "./resuming.js";

/** One item of a watch: the snapshot (first, when watching from 0 or after a resync) or one event. */
export type WatchItem =
  | {
      kind: "snapshot";
      /** The table revision of the snapshot. */
      revision: number;
      /** Every session in the table, oldest first. */
      sessions: Session[];
      /**
       * True when this snapshot replaces the consumer's state after a resync
       * (autoResume only): drop every session you held and keep these.
       */
      resync: boolean;
      /** The history `revision` belongs to (see Table.tableUid). */
      tableUid: string;
    }
  | {
      kind: "event";
      /** The table revision of this change. */
      revision: number;
      /** The history `revision` belongs to. */
      tableUid: string;
      type: EventType;
      /** The session after the change; for REMOVED and EXPIRED, its last state. */
      session: Session;
    };

export interface WatchOptions extends ResumeOptions {
  /** The table to watch; default `default`. */
  table?: string;
  /** 0 (default): a snapshot first, then events. N > 0: every event with revision >= N, no snapshot. */
  startRevision?: number;
  /**
   * With `startRevision` N > 0: the `tableUid` N belongs to (a position the
   * consumer kept: `lastRevision + 1` and `tableUid` of an earlier stream).
   * If the table's history is another one now, the watch fails with
   * TableUidMismatchError, or resyncs with `autoResume`.
   */
  tableUid?: string;
}

/** A live watch: iterate it once with `for await`; `break` or close() cancels the call. */
export interface WatchStream extends AsyncIterable<WatchItem> {
  /** Cancels the call; the iteration ends cleanly (no error). Idempotent. */
  close(): void;
  /** The revision of the last item yielded; 0 before any. */
  readonly lastRevision: number;
  /** The history `lastRevision` belongs to; the `tableUid` option (or "") before any item. Keep both to resume later. */
  readonly tableUid: string;
}

/** Opens one Watch call from `startRevision` of history `tableUid` ("": unchecked); throws if the client is closed. */
export type OpenWatchCall = (startRevision: number, tableUid: string) => ClientReadableStream<WatchResponse>;

/** What autoResume does after an error. */
function recovery(err: SessionRegistryError): "resync" | "retry" | "throw" {
  // The position is gone from the history, or belongs to another one: only a new snapshot is the truth.
  if (err instanceof RevisionCompactedError || err instanceof HistoryChangedError) return "resync";
  // The daemon delivered every event before resume_revision, which is where
  // the next call starts: nothing is lost, and no snapshot is needed unless
  // that revision has been compacted meanwhile (REVISION_COMPACTED next).
  if (err instanceof WatcherTooSlowError) return "retry";
  return transient(err) ? "retry" : "throw";
}

export class WatchStreamImpl extends ResumingStream<WatchResponse, WatchItem> implements WatchStream {
  private last = 0;
  private uid: string;
  /** Where the next call starts: the original start until something is yielded, then lastRevision + 1; 0 while a resync is pending. */
  private nextStart: number;
  private resyncPending = false;

  constructor(
    private readonly open: OpenWatchCall,
    options: WatchOptions,
    hooks: ResumingHooks,
  ) {
    super("a WatchStream", options, hooks);
    this.nextStart = options.startRevision ?? 0;
    this.uid = options.tableUid ?? "";
  }

  get lastRevision(): number {
    return this.last;
  }

  get tableUid(): string {
    return this.uid;
  }

  protected openCall(): ClientReadableStream<WatchResponse> {
    return this.open(this.nextStart, this.nextStart === 0 ? "" : this.uid);
  }

  protected resumesAt(): number {
    return this.nextStart;
  }

  protected accept(message: WatchResponse): WatchItem | undefined {
    const item = toItem(message, this.resyncPending);
    if (item === undefined) return undefined; // a message kind this SDK version does not know
    this.resyncPending = false;
    this.nextStart = item.revision + 1;
    this.last = item.revision;
    this.uid = item.tableUid;
    return item;
  }

  protected recover(err: SessionRegistryError): "retry" | "throw" {
    const action = recovery(err);
    if (action !== "resync") return action;
    this.resyncPending = true;
    this.nextStart = 0;
    return "retry";
  }
}

function toItem(message: WatchResponse, resync: boolean): WatchItem | undefined {
  const kind = message.kind;
  switch (kind?.$case) {
    case "snapshot":
      return { kind: "snapshot", revision: message.revision, tableUid: message.tableUid, sessions: kind.value.sessions, resync };
    case "event": {
      const session = kind.value.session;
      if (session === undefined) {
        throw new SessionRegistryError({ code: status.INTERNAL, details: "watch event is missing session" });
      }
      return { kind: "event", revision: message.revision, tableUid: message.tableUid, type: kind.value.type, session };
    }
    default:
      return undefined;
  }
}
