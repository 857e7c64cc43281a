/**
 * grpc.health.v1.Health: SERVING for "" (the whole daemon) and for
 * sessionregistry.v1.SessionRegistry until shutdown starts, NOT_FOUND
 * (Check) or SERVICE_UNKNOWN (Watch) for any other name; List gives both.
 *
 * With a store that can be unreachable (etcd), both names follow the store:
 * NOT_SERVING while it is unreachable, SERVING again when it returns
 * (setStoreAvailable). Shutdown's NOT_SERVING is final.
 *
 * Served from the stubs that buf generates from the vendored health.proto,
 * not by grpc-health-check, whose import loads the proto through
 * proto-loader and protobufjs: most of the daemon's start-up time.
 *
 * Requests that do not decode are answered INVALID_ARGUMENT, not grpc-js's
 * INTERNAL (see refusingUndecodable).
 *
 * A Watch stream never ends by itself, and a stream still open holds a
 * graceful shutdown for its whole grace period: endWatches ends them all
 * once they have been told NOT_SERVING.
 */
import { status, type Server, type ServerWritableStream } from "@grpc/grpc-js";

import {
  HealthCheckResponse_ServingStatus as ServingStatus,
  HealthService,
  type HealthCheckRequest,
  type HealthCheckResponse,
  type HealthServer,
} from "../gen/grpc/health/v1/health.js";
import { quote } from "../core/errors.js";
import { refusingUndecodable } from "../transport/codecs.js";

/** The name clients ask about for the registry itself. */
export const REGISTRY_SERVICE_NAME = "sessionregistry.v1.SessionRegistry";

/** Every name the daemon reports on; "" is the server as a whole. */
export const HEALTH_SERVICE_NAMES: readonly string[] = ["", REGISTRY_SERVICE_NAME];

type WatchCall = ServerWritableStream<HealthCheckRequest, HealthCheckResponse>;

/**
 * One Watch call. It sends a status only when it differs from the last one
 * sent, as the health protocol asks. A client that does not read gets the
 * latest status once it reads again, not every status in between (as
 * grpc-go does), so a flapping store cannot fill the daemon's memory.
 */
class HealthWatch {
  private sent: ServingStatus | undefined;
  private pending: ServingStatus | undefined;
  private blocked = false;

  /** `known`: the call asks about a name the daemon reports on (only those change). */
  constructor(
    readonly call: WatchCall,
    readonly known: boolean,
  ) {}

  send(next: ServingStatus): void {
    if (this.blocked) {
      this.pending = next;
      return;
    }
    if (next === this.sent) return;
    this.sent = next;
    if (this.call.write({ status: next })) return;
    this.blocked = true;
    this.call.once("drain", () => {
      this.blocked = false;
      const latest = this.pending;
      this.pending = undefined;
      if (latest !== undefined) this.send(latest);
    });
  }

  /** Ends the call with UNAVAILABLE, after every status it is owed. */
  end(): void {
    const { call } = this;
    if (call.cancelled || call.destroyed || call.writableEnded) return;
    if (this.pending !== undefined && this.pending !== this.sent) call.write({ status: this.pending });
    this.pending = undefined;
    // A server stream sends an error status when 'error' is emitted on it; the writes before it go first.
    call.emit("error", { code: status.UNAVAILABLE, details: "the daemon is shutting down" });
  }
}

export class DaemonHealth {
  private readonly watches = new Set<HealthWatch>();
  private ended = false;
  private stopping = false;
  private storeAvailable = true;

  addToServer(server: Pick<Server, "addService">): void {
    const implementation: HealthServer = {
      check: (call, callback) => {
        const name = call.request.service;
        if (!HEALTH_SERVICE_NAMES.includes(name)) {
          callback({
            code: status.NOT_FOUND,
            details: `no health status for service ${quote(name)}; this daemon reports on "" and ${REGISTRY_SERVICE_NAME}`,
          });
          return;
        }
        callback(null, { status: this.status() });
      },
      watch: (call) => {
        // A name it does not know stays unknown: SERVICE_UNKNOWN, then nothing until the call ends.
        const watch = new HealthWatch(call, HEALTH_SERVICE_NAMES.includes(call.request.service));
        watch.send(watch.known ? this.status() : ServingStatus.SERVICE_UNKNOWN);
        if (this.ended) {
          watch.end();
          return;
        }
        this.watches.add(watch);
        const forget = () => this.watches.delete(watch);
        call.on("cancelled", forget);
        call.on("finish", forget);
      },
      list: (_call, callback) => {
        const current = { status: this.status() };
        callback(null, { statuses: new Map(HEALTH_SERVICE_NAMES.map((name) => [name, current])) });
      },
    };
    const { definition, implementation: refusing } = refusingUndecodable(HealthService, implementation);
    server.addService(definition, refusing);
  }

  /** The first step of shutdown: every name turns NOT_SERVING, and open Watch calls are told so. */
  setNotServing(): void {
    this.stopping = true;
    this.publish();
  }

  /** Whether the store serves now, as last set (shutdown does not change it). */
  get isStoreAvailable(): boolean {
    return this.storeAvailable;
  }

  /** The store became reachable (SERVING) or unreachable (NOT_SERVING); ignored once shutdown started. */
  setStoreAvailable(available: boolean): void {
    this.storeAvailable = available;
    this.publish();
  }

  private status(): ServingStatus {
    return this.stopping || !this.storeAvailable ? ServingStatus.NOT_SERVING : ServingStatus.SERVING;
  }

  private publish(): void {
    const current = this.status();
    for (const watch of this.watches) if (watch.known) watch.send(current);
  }

  /**
   * Ends every open Watch call with UNAVAILABLE, after the statuses they were
   * already sent, and any Watch that starts later right after its first
   * message.
   */
  endWatches(): void {
    this.ended = true;
    const all = [...this.watches];
    this.watches.clear();
    for (const watch of all) watch.end();
  }
}
