/**
 * grpc.health.v1.Health, served by grpc-health-check's HealthImplementation:
 * SERVING for "" (the whole daemon) and for sessionregistry.v1.SessionRegistry
 * until shutdown starts, NOT_FOUND (Check) or SERVICE_UNKNOWN (Watch) for
 * any other name.
 *
 * With a store that can be unreachable (etcd), both names follow the store:
 * NOT_SERVING while it is unreachable, SERVING again when it returns
 * (setStoreAvailable). Shutdown's NOT_SERVING is final.
 *
 * Requests that do not decode are answered INVALID_ARGUMENT, not grpc-js's
 * INTERNAL (see refusingUndecodable).
 *
 * The package's Watch streams never end, and a stream still open holds a
 * graceful shutdown for its whole grace period. So this class sees each Watch
 * call go by and ends them all once they have been told NOT_SERVING.
 */
import { status, type Server, type ServerWritableStream, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

import { refusingUndecodable } from "../transport/codecs.js";

/** The name clients ask about for the registry itself. */
export const REGISTRY_SERVICE_NAME = "sessionregistry.v1.SessionRegistry";

/** Every name the daemon reports on; "" is the server as a whole. */
export const HEALTH_SERVICE_NAMES: readonly string[] = ["", REGISTRY_SERVICE_NAME];

type WatchCall = ServerWritableStream<unknown, unknown>;

export class DaemonHealth {
  private readonly impl = new HealthImplementation(Object.fromEntries(HEALTH_SERVICE_NAMES.map((name) => [name, "SERVING"])));
  private readonly watches = new Set<WatchCall>();
  private ended = false;
  private stopping = false;
  private storeAvailable = true;

  addToServer(server: Pick<Server, "addService">): void {
    this.impl.addToServer({
      addService: (def, impl) => {
        const { definition, implementation } = refusingUndecodable(def as unknown as ServiceDefinition, impl as UntypedServiceImplementation);
        server.addService(definition, this.trackWatches(definition, implementation));
      },
    });
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

  private publish(): void {
    const status = this.stopping || !this.storeAvailable ? "NOT_SERVING" : "SERVING";
    for (const name of HEALTH_SERVICE_NAMES) this.impl.setStatus(name, status);
  }

  /**
   * Ends every open Watch call with UNAVAILABLE, after the statuses they were
   * already sent, and any Watch that starts later right after its first
   * message.
   */
  endWatches(): void {
    this.ended = true;
    for (const call of [...this.watches]) this.end(call);
  }

  /** The implementation with its server-streaming handler (Watch) wrapped to know its calls. */
  private trackWatches(definition: ServiceDefinition, implementation: UntypedServiceImplementation): UntypedServiceImplementation {
    const wrapped: UntypedServiceImplementation = { ...implementation };
    for (const [name, method] of Object.entries(definition)) {
      if (!method.responseStream || method.requestStream) continue;
      // grpc-js finds a handler under the method's name or its originalName (lower camel case).
      const key = name in implementation ? name : method.originalName;
      const handler = key === undefined ? undefined : implementation[key];
      if (key === undefined || handler === undefined) continue;
      wrapped[key] = (call: WatchCall) => {
        this.watches.add(call);
        const forget = () => this.watches.delete(call);
        call.on("cancelled", forget);
        call.on("finish", forget);
        (handler as (call: WatchCall) => void)(call);
        if (this.ended) this.end(call);
      };
    }
    return wrapped;
  }

  private end(call: WatchCall): void {
    this.watches.delete(call);
    if (call.cancelled || call.destroyed || call.writableEnded) return;
    // A server stream sends an error status when 'error' is emitted on it; the writes before it go first.
    call.emit("error", { code: status.UNAVAILABLE, details: "the daemon is shutting down" });
  }
}
