/**
 * The ErrorInfo reasons are written down four times: the proto's error table
 * (the contract), the daemon's core, the TypeScript SDK and the Python SDK.
 * This test keeps the copies in step: a reason added to one and not the
 * others fails here.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { expect } from "chai";
import { ErrorReason } from "@session-registry/client";

import { Reason } from "../../src/core/errors.js";
import { REPO_ROOT } from "../cli/cli-process.js";

/** The reasons of the table in the proto's header comment: `// | CODE | REASON | metadata |`. */
function protoReasons(): string[] {
  const proto = readFileSync(`${REPO_ROOT}/proto/sessionregistry/v1/session_registry.proto`, "utf8");
  const out: string[] = [];
  for (const line of proto.split("\n")) {
    const m = /^\/\/ \| ([A-Z_]+) +\| ([A-Z_]+) +\|/.exec(line);
    if (m !== null && m[1] !== "code") out.push(m[2]!);
  }
  return out.sort();
}

function pythonReasons(): string[] {
  const script =
    "import sys; sys.path.insert(0, 'clients/python'); from session_registry import ErrorReason as R; " +
    "print('\\n'.join(v for k, v in vars(R).items() if k.isupper()))";
  return execFileSync("/usr/bin/python3", ["-c", script], { cwd: REPO_ROOT, encoding: "utf8" }).trim().split("\n").sort();
}

describe("ErrorInfo reasons", () => {
  it("are the same in the proto's table, the core, the TypeScript SDK and the Python SDK", () => {
    const proto = protoReasons();
    expect(proto).to.include("TABLE_UID_MISMATCH");
    expect(Object.values(Reason).sort(), "src/core/errors.ts").to.deep.equal(proto);
    expect(Object.values(ErrorReason).sort(), "clients/typescript/src/errors.ts").to.deep.equal(proto);
    expect(pythonReasons(), "clients/python/session_registry/errors.py").to.deep.equal(proto);
  });
});
