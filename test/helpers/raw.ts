/**
 * A promise wrapper around the generated grpc-js client, for requests the SDK
 * will not send (no lookup key, output-only fields, an empty update mask) and
 * for reading error details off the wire.
 */
import { type Client, type ClientReadableStream, credentials, Metadata, type ServiceError, status as grpcStatus } from "@grpc/grpc-js";
import {
  SessionRegistryClient as GeneratedClient,
  type CreateTableRequest,
  type CreateTableResponse,
  type GetTableRequest,
  type GetTableResponse,
  type DeleteTableRequest,
  type ListRequest,
  type ListResponse,
  type LookupRequest,
  type LookupResponse,
  type RegisterRequest,
  type RegisterResponse,
  type RemoveRequest,
  type RemoveResponse,
  type UpdateRequest,
  type UpdateResponse,
  type WatchRequest,
  type WatchResponse,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";
import { BadRequest, ErrorInfo } from "@session-registry/client/gen/google/rpc/error_details";
import { Status } from "@session-registry/client/gen/google/rpc/status";

type Callback<T> = (err: ServiceError | null, res: T) => void;

/** A request whose `tableUid` (most tests send none) may be left out. */
type WithoutUid<R extends { tableUid: string }> = Omit<R, "tableUid"> & { tableUid?: string };

function promised<T>(start: (cb: Callback<T>) => void): Promise<T> {
  return new Promise((resolve, reject) => start((err, res) => (err ? reject(err) : resolve(res))));
}

export class RawRegistry {
  readonly client: GeneratedClient;

  constructor(address: string) {
    this.client = new GeneratedClient(address, credentials.createInsecure());
  }

  createTable(req: CreateTableRequest): Promise<CreateTableResponse> {
    return promised((cb) => this.client.createTable(req, cb));
  }
  getTable(req: GetTableRequest): Promise<GetTableResponse> {
    return promised((cb) => this.client.getTable(req, cb));
  }
  deleteTable(req: DeleteTableRequest): Promise<unknown> {
    return promised((cb) => this.client.deleteTable(req, cb));
  }
  register(req: RegisterRequest): Promise<RegisterResponse> {
    return promised((cb) => this.client.register(req, cb));
  }
  lookup(req: LookupRequest): Promise<LookupResponse> {
    return promised((cb) => this.client.lookup(req, cb));
  }
  list(req: ListRequest): Promise<ListResponse> {
    return promised((cb) => this.client.list(req, cb));
  }
  /** `tableUid` may be left out: "" (unchecked). */
  update(req: WithoutUid<UpdateRequest>): Promise<UpdateResponse> {
    return promised((cb) => this.client.update({ tableUid: "", ...req }, cb));
  }
  /** `tableUid` may be left out: "" (unchecked). */
  remove(req: WithoutUid<RemoveRequest>): Promise<RemoveResponse> {
    return promised((cb) => this.client.remove({ tableUid: "", ...req }, cb));
  }
  /** `tableUid` may be left out: "" (unchecked). */
  watch(req: WithoutUid<WatchRequest>, metadata?: Metadata): ClientReadableStream<WatchResponse> {
    return this.client.watch({ tableUid: "", ...req }, metadata ?? new Metadata());
  }
  close(): void {
    this.client.close();
  }
}

/**
 * Sends `bytes` as the request of SessionRegistry's `method` (bytes as they
 * are: nothing the daemon's codecs would refuse is fixed on the way) and
 * returns the error the call must fail with.
 */
export function callBytes(client: Client, method: string, bytes: Uint8Array): Promise<ServiceError> {
  return new Promise((resolve, reject) => {
    client.makeUnaryRequest(
      `/sessionregistry.v1.SessionRegistry/${method}`,
      (b: Buffer) => b,
      (b: Buffer) => b,
      Buffer.from(bytes),
      (err) => (err ? resolve(err) : reject(new Error(`${method} succeeded on bad input`))),
    );
  });
}

/** Awaits a raw call that must fail and returns its grpc-js ServiceError. */
export async function rawError(promise: Promise<unknown>): Promise<ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as ServiceError;
  }
  throw new Error("expected the call to fail, but it succeeded");
}

export const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";
export const BAD_REQUEST_TYPE_URL = "type.googleapis.com/google.rpc.BadRequest";

export interface WireDetails {
  status: Status;
  errorInfos: ErrorInfo[];
  badRequests: BadRequest[];
  /** type URLs of every detail, in order. */
  typeUrls: string[];
}

/** Decodes the google.rpc.Status a failed call carries in its `grpc-status-details-bin` trailer. */
export function wireDetails(metadata: Metadata): WireDetails {
  const values = metadata.get("grpc-status-details-bin");
  if (values.length !== 1 || !(values[0] instanceof Buffer)) {
    throw new Error(`expected exactly one binary grpc-status-details-bin value, got ${values.length}`);
  }
  const status = Status.decode(values[0]);
  const errorInfos: ErrorInfo[] = [];
  const badRequests: BadRequest[] = [];
  for (const any of status.details) {
    if (any.typeUrl === ERROR_INFO_TYPE_URL) errorInfos.push(ErrorInfo.decode(any.value));
    if (any.typeUrl === BAD_REQUEST_TYPE_URL) badRequests.push(BadRequest.decode(any.value));
  }
  return { status, errorInfos, badRequests, typeUrls: status.details.map((d) => d.typeUrl) };
}

/**
 * A grpc-js error as a call failing with `reason` would give one (code
 * UNKNOWN, one ErrorInfo of the registry's domain carrying `metadata`), for
 * feeding the SDKs' error decoders without a daemon.
 */
export function errorWithInfo(reason: string, metadata: Record<string, string> = {}): ServiceError {
  const info = ErrorInfo.encode({ reason, domain: "sessionregistry.v1", metadata: new Map(Object.entries(metadata)) }).finish();
  const details = [{ typeUrl: ERROR_INFO_TYPE_URL, value: Buffer.from(info) }];
  const trailer = new Metadata();
  trailer.set("grpc-status-details-bin", Buffer.from(Status.encode({ code: grpcStatus.UNKNOWN, message: "m", details }).finish()));
  return Object.assign(new Error("m"), { code: grpcStatus.UNKNOWN, details: "m", metadata: trailer });
}
