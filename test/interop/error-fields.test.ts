/**
 * Every ErrorInfo metadata key the proto's error table lists for a reason is
 * a typed property of that reason's error class, in every SDK: camelCase in
 * TypeScript, snake_case in Python, a Go field in Go (SessionID, TableUID),
 * a number where the value is one. A key added to the table (or dropped
 * from a class) fails here.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { fromServiceError } from "@session-registry/client";

import { REPO_ROOT } from "../cli/cli-process.js";
import { GO_CLIENT, GO_TIMEOUT_MS, runGo } from "../helpers/go-program.js";
import { errorWithInfo } from "../helpers/raw.js";

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

/** Go spells initialisms in capitals: `session_id` is SessionID, `table_uid` TableUID. */
function goField(key: string): string {
  if (key === "name") return "SessionName";
  return key
    .split("_")
    .map((w) => (w === "id" || w === "uid" ? w.toUpperCase() : w.charAt(0).toUpperCase() + w.slice(1)))
    .join("");
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

/** Runs FromError on a status for each reason; returns reason -> {field: value} (numbers as numbers). */
function goFields(cases: Record<string, Record<string, string>>): Record<string, Record<string, unknown>> {
  const program = `package main

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sr "${GO_CLIENT}"
)

func main() {
	var in struct {
		Cases  map[string]map[string]string
		Fields map[string][]string
	}
	if err := json.NewDecoder(os.Stdin).Decode(&in); err != nil {
		panic(err)
	}
	out := map[string]map[string]interface{}{}
	for reason, metadata := range in.Cases {
		st, err := status.New(codes.Unknown, "m").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: sr.ErrorDomain, Metadata: metadata})
		if err != nil {
			panic(err)
		}
		v := reflect.ValueOf(sr.FromError(st.Err())).Elem()
		out[reason] = map[string]interface{}{}
		for _, name := range in.Fields[reason] {
			if f := v.FieldByName(name); f.IsValid() {
				out[reason][name] = f.Interface()
			} else {
				out[reason][name] = "<missing>"
			}
		}
	}
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
`;
  const fields = Object.fromEntries(Object.entries(cases).map(([r, md]) => [r, Object.keys(md).map(goField)]));
  return JSON.parse(runGo(program, JSON.stringify({ Cases: cases, Fields: fields }))) as Record<string, Record<string, unknown>>;
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
      const err = fromServiceError(errorWithInfo(reason, metadata)) as unknown as Record<string, unknown>;
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

  it("every metadata key is a typed field of the Go SDK's error type", function () {
    this.timeout(GO_TIMEOUT_MS);
    const got = goFields(cases);
    for (const [reason, metadata] of Object.entries(cases)) {
      for (const [key, value] of Object.entries(metadata)) {
        expect(got[reason]?.[goField(key)], `${reason}: ${goField(key)}`).to.equal(expected(key, value));
      }
    }
  });
});
