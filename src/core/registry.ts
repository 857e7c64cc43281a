/**
 * Registry semantics on top of a Store: request validation and normalization,
 * defaults (table `default`, server-made ids, derived names, page sizes), page
 * tokens. The transport calls these methods with the decoded request objects
 * (the generated request types satisfy these input shapes) and maps the
 * RegistryErrors they throw to gRPC statuses.
 */
import type { Duration, Session, Table } from "./model.js";
import type { Store } from "../store/store.js";

/** A session as a client sends it; output-only fields are ignored. */
export interface SessionInput {
  id: string;
  name: string;
  projectPath: string;
  metadata: ReadonlyMap<string, string>;
  ttl: Duration | undefined;
}

export type LookupKeyInput =
  | { $case: "id"; value: string }
  | { $case: "projectPath"; value: string }
  | { $case: "name"; value: string };

export interface ListResult {
  sessions: Session[];
  /** Empty on the last page. */
  nextPageToken: string;
  totalSize: number;
  revision: number;
}

export const DEFAULT_TABLE = "default";

export class Registry {
  constructor(readonly store: Store) {}

  createTable(input: { table: string; maxSessions: number }): Promise<{ table: Table; created: boolean }> {
    throw new Error("TODO");
  }
  getTable(input: { table: string }): Promise<Table> {
    throw new Error("TODO");
  }
  listTables(): Promise<Table[]> {
    throw new Error("TODO");
  }
  deleteTable(input: { table: string; force: boolean }): Promise<void> {
    throw new Error("TODO");
  }
  register(input: { table: string; session: SessionInput | undefined }): Promise<Session> {
    throw new Error("TODO");
  }
  lookup(input: { table: string; key: LookupKeyInput | undefined }): Promise<Session> {
    throw new Error("TODO");
  }
  list(input: { table: string; pageSize: number; pageToken: string }): Promise<ListResult> {
    throw new Error("TODO");
  }
  update(input: {
    table: string;
    session: SessionInput | undefined;
    updateMask: string[] | undefined;
    expectedRevision: number;
  }): Promise<Session> {
    throw new Error("TODO");
  }
  remove(input: { table: string; id: string; expectedRevision: number; allowMissing: boolean }): Promise<Session | undefined> {
    throw new Error("TODO");
  }
}
