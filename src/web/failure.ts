/** An error as the page acts on it: its code and the ErrorInfo reason and metadata the daemon puts in every error. */
import { Code, ConnectError } from "@connectrpc/connect";

import { ErrorInfoSchema } from "../gen/google/rpc/error_details_pb.js";

export interface Failure {
  code: Code;
  /** The ErrorInfo reason (e.g. TABLE_UID_MISMATCH), or "" when the answer carried none (a dropped connection). */
  reason: string;
  metadata: Record<string, string>;
  message: string;
}

export function failure(err: unknown): Failure {
  const e = ConnectError.from(err);
  const info = e.findDetails(ErrorInfoSchema)[0];
  return { code: e.code, reason: info?.reason ?? "", metadata: info?.metadata ?? {}, message: e.rawMessage };
}

export { Code };
