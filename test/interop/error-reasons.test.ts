/**
 * The ErrorInfo reasons are written down five times: the proto's error table
 * (the contract), the daemon's core, and the TypeScript, Python and Go SDKs.
 * This test keeps the copies in step: a reason added to one and not the
 * others fails here, and so does a reason one SDK gives an error type of its
 * own and another leaves on the base type.
 */
import { execFileSync } from "node:child_process";
import { expect } from "chai";
import { ErrorReason, fromServiceError, SessionRegistryError } from "@session-registry/client";

import { Reason } from "../../src/core/errors.js";
import { REPO_ROOT } from "../cli/cli-process.js";
import { GO_CLIENT, GO_TIMEOUT_MS, runGo } from "../helpers/go-program.js";
import { protoErrorTable } from "../helpers/proto-errors.js";
import { errorWithInfo } from "../helpers/raw.js";

/** The reasons of the table in the proto's header comment. */
function protoReasons(): string[] {
  return protoErrorTable()
    .map((e) => e.reason)
    .sort();
}

/** The Python SDK's reasons, and those it makes a subclass of SessionRegistryError for. */
function pythonReasons(): { reasons: string[]; typed: string[] } {
  const script =
    "import sys, json; sys.path.insert(0, 'clients/python'); from session_registry import ErrorReason as R; " +
    "from session_registry.errors import _CLASS_BY_REASON as C; " +
    "print(json.dumps({'reasons': sorted(v for k, v in vars(R).items() if k.isupper()), 'typed': sorted(C)}))";
  return JSON.parse(execFileSync("/usr/bin/python3", ["-c", script], { cwd: REPO_ROOT, encoding: "utf8" })) as {
    reasons: string[];
    typed: string[];
  };
}

/** The Go SDK's Reasons(), and those FromError gives a type of their own rather than *Error. */
function goReasons(): { reasons: string[]; typed: string[] } {
  const program = `package main

import (
	"encoding/json"
	"fmt"
	"sort"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	sr "${GO_CLIENT}"
)

func main() {
	out := struct {
		Reasons []string \`json:"reasons"\`
		Typed   []string \`json:"typed"\`
	}{Reasons: sr.Reasons(), Typed: []string{}}
	for _, reason := range out.Reasons {
		st, err := status.New(codes.Unknown, "m").WithDetails(&errdetails.ErrorInfo{Reason: reason, Domain: sr.ErrorDomain})
		if err != nil {
			panic(err)
		}
		if _, base := sr.FromError(st.Err()).(*sr.Error); !base {
			out.Typed = append(out.Typed, reason)
		}
	}
	sort.Strings(out.Reasons)
	sort.Strings(out.Typed)
	b, _ := json.Marshal(out)
	fmt.Println(string(b))
}
`;
  return JSON.parse(runGo(program)) as { reasons: string[]; typed: string[] };
}

/** The reasons the TypeScript SDK makes a subclass of SessionRegistryError for. */
function typescriptTyped(): string[] {
  return Object.values(ErrorReason)
    .filter((reason) => fromServiceError(errorWithInfo(reason)).constructor !== SessionRegistryError)
    .sort();
}

describe("ErrorInfo reasons", () => {
  const proto = protoReasons();
  let python: { reasons: string[]; typed: string[] };
  let go: { reasons: string[]; typed: string[] };
  before(function () {
    this.timeout(GO_TIMEOUT_MS);
    python = pythonReasons();
    go = goReasons();
  });

  it("are the same in the proto's table, the core, and the TypeScript, Python and Go SDKs", () => {
    expect(proto).to.include("TABLE_UID_MISMATCH");
    expect(Object.values(Reason).sort(), "src/core/errors.ts").to.deep.equal(proto);
    expect(Object.values(ErrorReason).sort(), "clients/typescript/src/errors.ts").to.deep.equal(proto);
    expect(python.reasons, "clients/python/session_registry/errors.py").to.deep.equal(proto);
    expect(go.reasons, "clients/go/sessionregistry/errors.go").to.deep.equal(proto);
  });

  it("get an error type of their own in every SDK, or in none", () => {
    const typed = typescriptTyped();
    expect(typed).to.include("SESSION_LIMIT_REACHED").and.not.include("INTERNAL");
    expect(python.typed, "clients/python/session_registry/errors.py").to.deep.equal(typed);
    expect(go.typed, "clients/go/sessionregistry/errors.go").to.deep.equal(typed);
  });
});
