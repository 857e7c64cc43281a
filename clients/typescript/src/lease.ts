/**
 * A registered session kept alive by periodic KeepAlive calls, like an etcd
 * lease. The timer is unref()ed: a lease never keeps a process alive on its
 * own, and when the process exits the session simply expires after its ttl.
 */
import { EventEmitter } from "node:events";
import { status } from "@grpc/grpc-js";
import type { Session } from "./gen/sessionregistry/v1/session_registry.js";
import { SessionNotFoundError, SessionRegistryError } from "./errors.js";

/** What a lease needs from the client; the client passes itself. */
export interface LeaseClient {
  keepAlive(id: string, options: { table?: string }): Promise<Session>;
  remove(id: string, options: { table?: string; allowMissing?: boolean }): Promise<Session | undefined>;
}

/** Event names and their arguments. */
export interface SessionLeaseEvents {
  /** A keep-alive succeeded; the session carries its new expireTime. */
  renewed: [session: Session];
  /** The session is gone (expired, removed by someone else, or unreachable past its expireTime). */
  lost: [error: SessionRegistryError];
}

/** Failures that a later keep-alive may get past; anything else means the session cannot be kept. */
const TRANSIENT_CODES: ReadonlySet<status> = new Set([
  status.UNAVAILABLE,
  status.DEADLINE_EXCEEDED,
  status.CANCELLED,
  status.INTERNAL,
  status.UNKNOWN,
  status.RESOURCE_EXHAUSTED,
  status.ABORTED,
]);

type State = "active" | "closed" | "lost";

/**
 * Keeps one session alive. Events: `renewed` (session) after each keep-alive,
 * `lost` (error) once if the session is gone. There is no `error` event, so a
 * lease without listeners never crashes the process.
 */
export class SessionLease extends EventEmitter<SessionLeaseEvents> {
  readonly table: string;
  private latest: Session;
  private state: State = "active";
  private lostError: SessionRegistryError | undefined;
  private timer: NodeJS.Timeout | undefined;
  private settle: { resolve: () => void; reject: (err: SessionRegistryError) => void } | undefined;
  private donePromise: Promise<void> | undefined;

  /** @internal Made by SessionRegistryClient.registerWithKeepAlive. */
  constructor(
    private readonly client: LeaseClient,
    session: Session,
    table: string,
    private readonly intervalMs: number,
    /** Called once when the lease stops, however it stops. */
    private readonly onStop: (lease: SessionLease) => void = () => {},
  ) {
    super();
    this.table = table;
    this.latest = session;
    this.schedule();
  }

  /** The session as of the latest successful keep-alive (or the registration). */
  get session(): Session {
    return this.latest;
  }

  /** True once the session was lost; `done()` then rejects with the error. */
  get lost(): boolean {
    return this.state === "lost";
  }

  /**
   * Resolves when the lease is closed or removed; rejects with the error when
   * the session is lost. Made on first call, so a lease whose done() nobody
   * asks for never produces an unhandled rejection.
   */
  done(): Promise<void> {
    if (this.donePromise === undefined) {
      if (this.state === "closed") this.donePromise = Promise.resolve();
      // markLost sets lostError with the state.
      else if (this.state === "lost") this.donePromise = Promise.reject(this.lostError!);
      else {
        this.donePromise = new Promise<void>((resolve, reject) => {
          this.settle = { resolve, reject };
        });
      }
    }
    return this.donePromise;
  }

  /** Stops keeping the session alive; it expires after its ttl. Idempotent; emits no `lost`. */
  close(): void {
    if (this.state !== "active") return;
    this.stop("closed");
    this.settle?.resolve();
  }

  /** Stops keeping the session alive and removes it (a missing session is fine). Returns the removed session, if any. */
  async remove(): Promise<Session | undefined> {
    this.close();
    return this.client.remove(this.latest.id, { table: this.table, allowMissing: true });
  }

  private schedule(): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.renew();
    }, this.intervalMs);
    this.timer.unref();
  }

  // One keep-alive at a time: the next is scheduled only after this one settles.
  private async renew(): Promise<void> {
    let renewed: Session;
    try {
      renewed = await this.client.keepAlive(this.latest.id, { table: this.table });
    } catch (err) {
      if (this.state !== "active") return;
      const error =
        err instanceof SessionRegistryError
          ? err
          : new SessionRegistryError({ code: status.UNKNOWN, details: err instanceof Error ? err.message : String(err) });
      if (error instanceof SessionNotFoundError || !TRANSIENT_CODES.has(error.code) || this.pastExpiry()) {
        this.markLost(error);
      } else {
        this.schedule();
      }
      return;
    }
    if (this.state !== "active") return;
    this.latest = renewed;
    this.schedule();
    this.emit("renewed", renewed);
  }

  /** Whether the server has surely dropped the session by now (by our clock). */
  private pastExpiry(): boolean {
    const expireTime = this.latest.expireTime;
    return expireTime !== undefined && Date.now() >= expireTime.getTime();
  }

  private markLost(error: SessionRegistryError): void {
    this.lostError = error;
    this.stop("lost");
    this.settle?.reject(error);
    this.emit("lost", error);
  }

  private stop(state: Exclude<State, "active">): void {
    this.state = state;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
    this.onStop(this);
  }
}
