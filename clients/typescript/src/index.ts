/**
 * @session-registry/client: a typed, promise-based client for the
 * session-registry daemon. The full generated stubs (requests, the raw grpc-js
 * client, the service definition) stay available under
 * `@session-registry/client/gen/sessionregistry/v1/session_registry`.
 */
export {
  SessionRegistryClient,
  type KeepAliveOptions,
  type LookupKey,
  type RegisterInput,
  type RetryEvent,
  type RetryOptions,
  type SessionMetadata,
  type SessionRegistryClientOptions,
  type UpdateInput,
  type UpdatePath,
} from "./client.js";
export { SessionLease, type SessionLeaseEvents } from "./lease.js";
export { type TablesUpdate, type TablesWatchOptions, type TablesWatchStream } from "./tables-watch.js";
export { WATCH_HIGH_WATER_MARK, type WatchItem, type WatchOptions, type WatchReconnectEvent, type WatchStream } from "./watch.js";
export {
  ERROR_DOMAIN,
  ErrorReason,
  type FieldViolation,
  fromServiceError,
  FutureRevisionError,
  HistoryChangedError,
  InvalidArgumentError,
  PermissionDeniedError,
  ProjectAlreadyOpenError,
  RevisionCompactedError,
  RevisionMismatchError,
  SessionExistsError,
  SessionLimitReachedError,
  SessionNotFoundError,
  SessionRegistryError,
  type SessionRegistryErrorInit,
  TableExistsError,
  TableLimitReachedError,
  TableNotEmptyError,
  TableNotFoundError,
  TableUidMismatchError,
  UnauthenticatedError,
  WatcherLimitReachedError,
  MemoryBudgetReachedError,
  StoreUnavailableError,
  WatcherTooSlowError,
} from "./errors.js";
export {
  EventType,
  eventTypeToJSON,
  GetServerInfoResponse,
  ListResponse,
  Session,
  Table,
  WatchEvent,
  WatchResponse,
  WatchSnapshot,
  WatchTablesResponse,
} from "./gen/sessionregistry/v1/session_registry.js";
export { Duration } from "./gen/google/protobuf/duration.js";
// Re-exported so that callers need no direct @grpc/grpc-js dependency for TLS
// credentials or for comparing `err.code` with `status.NOT_FOUND`.
export { type ChannelCredentials, type ChannelOptions, credentials, status } from "@grpc/grpc-js";
