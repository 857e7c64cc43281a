/**
 * A grpc.health.v1.Health client built from grpc-health-check's own service
 * definition (statuses come as their enum names), with a Watch that records
 * what it receives.
 */
import {
  credentials as grpcCredentials,
  makeGenericClientConstructor,
  type ChannelCredentials,
  type ChannelOptions,
  type Client,
  type ClientReadableStream,
  type ServiceError,
} from "@grpc/grpc-js";
import { service as healthService } from "grpc-health-check";

export type ServingStatus = "UNKNOWN" | "SERVING" | "NOT_SERVING" | "SERVICE_UNKNOWN";

interface HealthStub extends Client {
  check(req: { service: string }, cb: (err: ServiceError | null, res?: { status: ServingStatus }) => void): void;
  watch(req: { service: string }): ClientReadableStream<{ status: ServingStatus }>;
  list(req: object, cb: (err: ServiceError | null, res?: { statuses: Record<string, { status: ServingStatus }> }) => void): void;
}

const HealthStubClass = makeGenericClientConstructor(healthService, "Health") as unknown as new (
  address: string,
  credentials: ChannelCredentials,
  options?: ChannelOptions,
) => HealthStub;

export class HealthClient {
  private readonly stub: HealthStub;

  constructor(address: string, credentials: ChannelCredentials = grpcCredentials.createInsecure(), options: ChannelOptions = {}) {
    this.stub = new HealthStubClass(address, credentials, options);
  }

  check(service: string): Promise<ServingStatus> {
    return new Promise((resolve, reject) => this.stub.check({ service }, (err, res) => (err ? reject(err) : resolve(res!.status))));
  }

  /** List: every name the server reports on, with its status. */
  list(): Promise<Record<string, ServingStatus>> {
    return new Promise((resolve, reject) =>
      this.stub.list({}, (err, res) =>
        err ? reject(err) : resolve(Object.fromEntries(Object.entries(res!.statuses).map(([name, s]) => [name, s.status]))),
      ),
    );
  }

  watch(service: string): HealthWatch {
    return new HealthWatch(this.stub.watch({ service }));
  }

  close(): void {
    this.stub.close();
  }
}

export class HealthWatch {
  readonly statuses: ServingStatus[] = [];
  error: ServiceError | undefined;
  ended = false;
  private wakers: (() => void)[] = [];

  constructor(readonly call: ClientReadableStream<{ status: ServingStatus }>) {
    call.on("data", (m: { status: ServingStatus }) => {
      this.statuses.push(m.status);
      this.wake();
    });
    call.on("error", (err: ServiceError) => {
      this.error = err;
      this.ended = true;
      this.wake();
    });
    call.on("end", () => {
      this.ended = true;
      this.wake();
    });
  }

  /** Resolves once `done()` holds; rejects when `ms` pass first (mocha's timeout would say less). */
  async until(done: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms;
    while (!done()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.statuses)}, error ${String(this.error)}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wakers.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  private wake(): void {
    for (const w of this.wakers.splice(0)) w();
  }
}
