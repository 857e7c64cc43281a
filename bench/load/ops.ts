/**
 * The calls of each workload, as bytes over a channel: what the load
 * generator's workers (./worker.ts) send, and what bench/alloc.ts sends
 * when it counts calls one by one. Requests are encoded by the generated
 * SDK code; answers are checked for their status only.
 */
import {
  GetTableRequest,
  ListRequest,
  ListTablesRequest,
  LookupRequest,
  RegisterRequest,
  RemoveRequest,
} from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { sessionMessage } from "../calls.js";
import { idOf } from "../sessions.js";
import type { WorkerTask } from "./protocol.js";

const SERVICE = "/sessionregistry.v1.SessionRegistry/";

/** What a call goes over: an HTTP/2 connection (gRPC), or a pool of HTTP/1.1 ones (Connect JSON). */
export interface Channel {
  connected(): Promise<void>;
  unary(path: string, message: Uint8Array): Promise<void>;
  close(): void;
}

/** One call (or pair) of the workload over `clients`; `n` numbers it within this worker's task. */
export function makeOp(
  task: Pick<WorkerTask, "worker" | "run" | "transport" | "workload">,
  clients: Channel[],
): (n: number) => Promise<void> {
  const w = task.workload;
  if (task.transport === "connect-json") {
    if (w.kind !== "lookup") throw new Error(`the ${w.kind} workload speaks gRPC only`);
    const requests = w.ids.map((id) => new TextEncoder().encode(JSON.stringify({ table: w.table, id })));
    return (n) => clients[0]!.unary(SERVICE + "Lookup", requests[n % requests.length]!);
  }
  if (w.kind === "lookup") {
    const requests = w.ids.map((id) => LookupRequest.encode({ table: w.table, key: { $case: "id", value: id } }).finish());
    return (n) => clients[n % clients.length]!.unary(SERVICE + "Lookup", requests[n % requests.length]!);
  }
  if (w.kind === "lookupRandom") {
    // Encoded per call: a million requests encoded up front would not fit the worker's cache either, and both tables pay the same.
    return (n) =>
      clients[n % clients.length]!.unary(
        SERVICE + "Lookup",
        LookupRequest.encode({ table: w.table, key: { $case: "id", value: idOf(Math.floor(Math.random() * w.size)) } }).finish(),
      );
  }
  if (w.kind === "list" || w.kind === "getTable" || w.kind === "listTables") {
    const [method, request] =
      w.kind === "list"
        ? ["List", ListRequest.encode({ table: w.table, pageSize: w.pageSize, pageToken: "" }).finish()]
        : w.kind === "getTable"
          ? ["GetTable", GetTableRequest.encode({ table: w.table }).finish()]
          : ["ListTables", ListTablesRequest.encode({}).finish()];
    return (n) => clients[n % clients.length]!.unary(SERVICE + method, request);
  }
  // 100-byte project paths, as in the in-process figures.
  const path = "/bench/project/".padEnd(80, "x");
  const registerRequest = (id: string) =>
    RegisterRequest.encode({
      table: w.table,
      requestId: "",
      session: sessionMessage({ id, projectPath: `${path}/${id}`.padEnd(100, "x") }),
    }).finish();
  if (w.kind === "register") {
    return (n) => clients[n % clients.length]!.unary(SERVICE + "Register", registerRequest(`${w.prefix}-${task.worker}-${task.run}-${n}`));
  }
  return async (n) => {
    const id = `w${task.worker}-${task.run}-${n}`;
    const client = clients[n % clients.length]!;
    await client.unary(SERVICE + "Register", registerRequest(id));
    const remove = RemoveRequest.encode({
      table: w.table,
      id,
      requestId: "",
      allowMissing: false,
      expectedRevision: 0,
      tableUid: "",
    }).finish();
    await client.unary(SERVICE + "Remove", remove);
  };
}
