/**
 * The error table in the proto's header comment, `// | CODE | REASON |
 * metadata |`: the contract's list of ErrorInfo reasons, each with its gRPC
 * code and the metadata keys it names. Tests hold the core, the SDKs and the
 * docs to it.
 */
import { readFileSync } from "node:fs";

import { REPO_ROOT } from "../cli/cli-process.js";

export interface ProtoError {
  code: string;
  reason: string;
  /** The ErrorInfo metadata keys the row names (its `snake_case` words). */
  metadata: string[];
}

export function protoErrorTable(): ProtoError[] {
  const proto = readFileSync(`${REPO_ROOT}/proto/sessionregistry/v1/session_registry.proto`, "utf8");
  const out: ProtoError[] = [];
  for (const line of proto.split("\n")) {
    const m = /^\/\/ \| ([A-Z_]+) +\| ([A-Z_]+) +\|(.*)\|$/.exec(line);
    if (m !== null) out.push({ code: m[1]!, reason: m[2]!, metadata: metadataKeys(m[3]!) });
  }
  return out;
}

/** The `snake_case` words of a table cell, as it names metadata keys: "`table`, `session_id` (the holder)". */
export function metadataKeys(cell: string): string[] {
  return [...cell.matchAll(/`([a-z_]+)`/g)].map((m) => m[1]!).sort();
}
