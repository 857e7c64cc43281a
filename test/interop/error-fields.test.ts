/**
 * Every ErrorInfo metadata key the proto's error table lists for a reason is
 * a typed property of that reason's error class, in both SDKs: camelCase in
 * TypeScript, snake_case in Python, a number where the value is one. A key
 * added to the table (or dropped from a class) fails here.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { Metadata, status } from "@grpc/grpc-js";
import { ERROR_DOMAIN, fromServiceError } from "@session-registry/client";
import { ErrorInfo } from "@session-registry/client/gen/google/rpc/error_details";
import { Status } from "@session-registry/client/gen/google/rpc/status";

import { REPO_ROOT } from "../cli/cli-process.js";

/** Reason -> its metadata keys, from the rows `// | CODE | REASON | `key`, `key` |` of the proto's header. */
function protoMetadataKeys(): Map<string, string[]> {
  const proto = readFileSync(`${REPO_ROOT}/proto/sessionregistry/v1/session_registry.proto`, "utf8");
  const out = new Map<string, string[]>();
  for (const line of proto.split("\n")) {
    const m = /^\/\/ \| ([A-Z_]+) +\| ([A-Z_]+) +\|(.*)$/.exec(line);
    if (m === null) continue;
    const keys = [...m[3]!.matchAll(/`([a-z_]+)`/g)].map((k) => k[1]!);
    if (keys.length > 0) out.set(m[2]!, keys);
  }
  // "`session_id` (or the lookup key)": a Lookup by path or by name names that key instead.
  out.get("SESSION_NOT_FOUND")?.push("project_path", "name");
  return out;
}

const NUMERIC = new Set([
  "current",
  "max",
  "max_sessions",
  "session_count",
  "current_revision",
  "compact_revision",
  "resume_revision",
  "used_bytes",
  "budget_bytes",
]);

/** `name` would clash with Error.name (the class name), so the session's name is `sessionName`. */
function tsProperty(key: string): string {
  return key === "name" ? "sessionName" : key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
}

function pythonAttribute(key: string): string {
  return key === "name" ? "session_name" : key;
}

function serviceError(reason: string, metadata: Record<string, string>) {
  const info = ErrorInfo.encode({ reason, domain: ERROR_DOMAIN, metadata: new Map(Object.entries(metadata)) }).finish();
  const details = [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }];
  const trailer = new Metadata();
  trailer.set("grpc-status-details-bin", Buffer.from(Status.encode({ code: status.UNKNOWN, message: "m", details }).finish()));
  return Object.assign(new Error("m"), { code: status.UNKNOWN, details: "m", metadata: trailer });
}

/** Runs from_rpc_error on a fake RpcError for each reason; returns reason -> {attribute: value}. */
function pythonFields(cases: Record<string, Record<string, string>>): Record<string, Record<string, unknown>> {
  const script = `
import json, sys
sys.path.insert(0, "clients/python")
import grpc
from session_registry import from_rpc_error  # first: it puts its generated stubs on sys.path
from google.rpc import error_details_pb2, status_pb2

class Fake(grpc.RpcError):
    def __init__(self, trailer): self.trailer = trailer
    def code(self): return grpc.StatusCode.UNKNOWN
    def details(self): return "m"
    def trailing_metadata(self): return [("grpc-status-details-bin", self.trailer)]

cases, attrs = json.load(sys.stdin)
out = {}
for reason, metadata in cases.items():
    s = status_pb2.Status(code=2, message="m")
    s.details.add().Pack(error_details_pb2.ErrorInfo(reason=reason, domain="sessionregistry.v1", metadata=metadata))
    err = from_rpc_error(Fake(s.SerializeToString()))
    out[reason] = {a: getattr(err, a, "<missing>") for a in attrs[reason]}
print(json.dumps(out))
`;
  const attrs = Object.fromEntries(Object.entries(cases).map(([r, md]) => [r, Object.keys(md).map(pythonAttribute)]));
  const stdout = execFileSync("/usr/bin/python3", ["-c", script], {
    cwd: REPO_ROOT,
    encoding: "utf8",
    input: JSON.stringify([cases, attrs]),
  });
  return JSON.parse(stdout) as Record<string, Record<string, unknown>>;
}

describe("Typed error fields", () => {
  const keys = protoMetadataKeys();
  // Distinct values, so a property that reads the wrong key shows.
  const cases = Object.fromEntries([...keys].map(([reason, ks]) => [reason, Object.fromEntries(ks.map((k, i) => [k, String(11 + i)]))]));
  const expected = (key: string, value: string) => (NUMERIC.has(key) ? Number(value) : value);

  it("the proto's table lists metadata for the reasons the SDKs type", () => {
    expect([...keys.keys()]).to.include.members(["SESSION_LIMIT_REACHED", "TABLE_NOT_FOUND", "PERMISSION_DENIED"]);
    expect(keys.get("SESSION_LIMIT_REACHED")).to.deep.equal(["table", "current", "max"]);
  });

  it("every metadata key is a typed property of the TypeScript SDK's error class", () => {
    for (const [reason, metadata] of Object.entries(cases)) {
      const err = fromServiceError(serviceError(reason, metadata)) as unknown as Record<string, unknown>;
      expect(err.reason, reason).to.equal(reason);
      for (const [key, value] of Object.entries(metadata)) {
        expect(err[tsProperty(key)], `${reason}: ${tsProperty(key)}`).to.equal(expected(key, value));
      }
    }
  });

  it("every metadata key is an attribute of the Python SDK's exception", () => {
    const got = pythonFields(cases);
    for (const [reason, metadata] of Object.entries(cases)) {
      for (const [key, value] of Object.entries(metadata)) {
        expect(got[reason]?.[pythonAttribute(key)], `${reason}: ${pythonAttribute(key)}`).to.equal(expected(key, value));
      }
    }
  });
});
