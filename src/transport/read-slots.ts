/**
 * The daemon's read slots (--max-pending-requests): how many requests,
 * across every connection of every listener, are read while incomplete;
 * the requests waiting unread for a slot; and which request gives its slot
 * up when one connection holds several. It knows no wire: the gRPC guard
 * (./call-guard.ts) and the HTTP door (./connect/service.ts) each claim a
 * slot when a request's headers have passed the caller's check, start
 * reading when told to, and settle once the request is complete or over.
 *
 * Waiting rather than refusing: well-behaved clients fill the slots for a
 * moment too, when a burst of requests' headers arrives before their
 * bodies. A waiting request still holds what its client sent before the
 * transport stopped reading it (an HTTP/2 stream window, an HTTP/1.1
 * request's buffer), so at most HELD_PER_PENDING times as many wait; past
 * that a request is refused at its headers, which a client may retry.
 * One connection cannot keep the others out: when every slot is taken and
 * a request comes on a connection that has none, the oldest request being
 * read on the connection that holds the most slots (two or more) loses its
 * slot to it. Holds, refusals and preemptions are logged once per interval,
 * with a count.
 */
import { IntervalLog } from "../core/interval-log.js";
import type { Logger } from "../core/logger.js";

/** How many requests may wait unread per --max-pending-requests slot: 256 slots, 1,024 waiting, 64 MiB of stream windows. */
export const HELD_PER_PENDING = 4;

export const BUSY_MESSAGE =
  "the daemon is busy reading other calls' requests (--max-pending-requests, and as many again waiting); retry after a moment";

export const PREEMPTED_MESSAGE =
  "the daemon ended this call while its request was still arriving, to read other connections' calls (--max-pending-requests); send each request whole and promptly, and retry";

export interface ReadSlotsOptions {
  maxPendingRequests: number;
  log: Logger;
  /** How often a repeated hold, refusal or preemption is logged (a count per interval). */
  logIntervalMs: number;
}

/** A request's claim on a slot, granted now or later. */
export interface SlotClaim {
  /** The request is complete, or over: its slot (or its place in line) goes. Idempotent; a function, to hand to events. */
  readonly settle: () => void;
}

interface Claim extends SlotClaim {
  /** Told when another connection's request took this one's slot, already settled: end the request. */
  readonly preempt: () => void;
}

export class ReadSlots {
  /** Requests being read: past their headers, not complete yet. */
  private reading = 0;
  /** Requests held at their headers, unread, for a slot; oldest first. */
  private readonly held = new Set<() => void>();
  /** The claims being read on each connection, oldest first. */
  private readonly readers = new Map<string, Claim[]>();
  /** A slot is being handed from a preempted request to a new one: held requests must not take it meanwhile. */
  private handingOver = false;
  private readonly heldLog: IntervalLog;
  private readonly busyLog: IntervalLog;
  private readonly preemptLog: IntervalLog;

  constructor(private readonly options: ReadSlotsOptions) {
    const { log, logIntervalMs, maxPendingRequests } = options;
    this.heldLog = new IntervalLog(
      (count) =>
        // info: a burst of well-behaved calls is held for a moment too.
        log.info({ count, maxPendingRequests }, "held calls unread: --max-pending-requests requests are arriving already"),
      logIntervalMs,
    );
    this.busyLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, maxPendingRequests, maxWaiting: maxPendingRequests * HELD_PER_PENDING },
          "refused calls UNAVAILABLE at their headers: too many calls are waiting for their requests to be read",
        ),
      logIntervalMs,
    );
    this.preemptLog = new IntervalLog(
      (count) =>
        log.warn(
          { count, maxPendingRequests },
          "ended calls whose request was still arriving, on connections holding several read slots, to read calls of other connections",
        ),
      logIntervalMs,
    );
  }

  /**
   * Claims a slot for a request on `connection` (any key naming one
   * connection, unique across listeners). `start` runs once the request may
   * be read: at once (before this returns), or later when a slot frees; it
   * gets the claim, for a request that may complete as soon as it is read.
   * `preempt` runs if the
   * request loses its slot to another connection's, after its claim is
   * settled. Undefined: refused, too many are waiting (answer UNAVAILABLE
   * with BUSY_MESSAGE); neither callback will run.
   */
  claim(connection: string, start: (claim: SlotClaim) => void, preempt: () => void): SlotClaim | undefined {
    let reading = false;
    let waiting: (() => void) | undefined;
    const claim: Claim = {
      preempt,
      settle: () => {
        if (waiting !== undefined) {
          this.held.delete(waiting);
          waiting = undefined;
        }
        if (!reading) return;
        reading = false;
        this.reading -= 1;
        const readers = this.readers.get(connection);
        const at = readers?.indexOf(claim) ?? -1;
        if (at >= 0) readers!.splice(at, 1);
        if (readers?.length === 0) this.readers.delete(connection);
        this.admitHeld();
      },
    };
    const begin = () => {
      waiting = undefined;
      reading = true;
      this.reading += 1;
      const readers = this.readers.get(connection);
      if (readers === undefined) this.readers.set(connection, [claim]);
      else readers.push(claim);
      start(claim);
    };
    if (this.reading < this.options.maxPendingRequests) {
      begin();
    } else if (this.takeSlotFor(connection)) {
      this.preemptLog.add();
      begin();
    } else if (this.held.size >= this.options.maxPendingRequests * HELD_PER_PENDING) {
      this.busyLog.add();
      return undefined;
    } else {
      this.heldLog.add();
      waiting = begin;
      this.held.add(begin);
    }
    return claim;
  }

  /** Requests being read whose request is not complete yet, across all connections. */
  get pendingRequests(): number {
    return this.reading;
  }

  /** Requests held unread for a slot. */
  get heldRequests(): number {
    return this.held.size;
  }

  /** Writes the counts of the current log interval (shutdown). */
  flushLogs(): void {
    this.heldLog.flush();
    this.busyLog.flush();
    this.preemptLog.flush();
  }

  /**
   * Frees a slot for a request on `connection` when that connection has
   * none and another holds two or more: that one's oldest request being
   * read loses its slot. Returns whether a slot is free for the caller now.
   */
  private takeSlotFor(connection: string): boolean {
    if (this.readers.has(connection)) return false;
    let victims: Claim[] | undefined;
    for (const readers of this.readers.values()) if (readers.length >= 2 && readers.length > (victims?.length ?? 0)) victims = readers;
    if (victims === undefined) return false;
    const victim = victims[0]!;
    this.handingOver = true;
    try {
      victim.settle();
    } finally {
      this.handingOver = false;
    }
    victim.preempt();
    return this.reading < this.options.maxPendingRequests;
  }

  /** Starts reading held requests, oldest first, while there are free slots. */
  private admitHeld(): void {
    if (this.handingOver) return;
    for (const start of this.held) {
      if (this.reading >= this.options.maxPendingRequests) return;
      this.held.delete(start);
      start();
    }
  }
}
