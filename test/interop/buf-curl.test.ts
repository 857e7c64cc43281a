/**
 * The contract as a client in another language sees it: `buf curl` is a Go
 * gRPC client that knows nothing of this codebase but the proto. It must read
 * our responses by the schema, and our error trailers as a standard
 * google.rpc.Status with typed details.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

import { ErrorInfo, BadRequest } from "../../src/gen/google/rpc/error_details.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUF = `${ROOT}node_modules/.bin/buf`;

interface CurlResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** A google.rpc.Status as buf curl prints it, details in their JSON form. */
interface StatusJson {
  code: string;
  message: string;
  details: { type: string; value: string }[];
}

/** The fields of a Session in proto3 JSON that the tests read: a uint64 comes as a string, a Duration as "30s". */
interface SessionJson {
  id: string;
  name: string;
  projectPath: string;
  metadata: Record<string, string>;
  ttl: string;
  revision: string;
}

describe("a non-TypeScript client (buf curl, Go)", function () {
  // Each buf curl starts a Go binary and compiles the schema: about a second on 2 cores.
  this.timeout(60_000);
  let d: TestDaemon;

  before(async () => {
    d = await startTestDaemon({ config: { maxSessions: 1 } });
  });
  after(async () => {
    await d.stop();
  });

  function curl(method: string, body: unknown): Promise<CurlResult> {
    const args = [
      "curl",
      "--protocol",
      "grpc",
      "--http2-prior-knowledge",
      "--schema",
      ROOT,
      "--data",
      JSON.stringify(body),
      `http://${d.address}/sessionregistry.v1.SessionRegistry/${method}`,
    ];
    return new Promise((resolve) => {
      execFile(BUF, args, { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === "number" ? err.code : -1;
        resolve({ code, stdout, stderr });
      });
    });
  }

  /** buf curl prints a failed call's status as JSON on stderr. */
  function errorOf(result: CurlResult): StatusJson {
    expect(result.code, `buf curl should fail; stdout: ${result.stdout}`).to.not.equal(0);
    return JSON.parse(result.stderr.slice(result.stderr.indexOf("{"))) as StatusJson;
  }

  it("registers a session and reads it back through the schema", async () => {
    const ok = await curl("Register", { session: { project_path: "/home/me/src/app/", metadata: { tool: "editor" }, ttl: "30s" } });
    expect(ok.code, ok.stderr).to.equal(0);
    const { session } = JSON.parse(ok.stdout) as { session: SessionJson };
    expect(session.projectPath).to.equal("/home/me/src/app");
    expect(session.name).to.equal("app");
    expect(session.metadata).to.deep.equal({ tool: "editor" });
    expect(session.ttl).to.equal("30s");
    expect(session.id).to.match(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(Number(session.revision)).to.be.greaterThan(0);

    const found = await curl("Lookup", { project_path: "/home/me/src/app" });
    expect(found.code, found.stderr).to.equal(0);
    expect((JSON.parse(found.stdout) as { session: SessionJson }).session.id).to.equal(session.id);
  });

  it("reads SESSION_LIMIT_REACHED as a google.rpc.Status with one ErrorInfo", async () => {
    const status = errorOf(await curl("Register", { session: { project_path: "/another" } }));
    expect(status.code).to.equal("resource_exhausted");
    expect(status.message).to.equal('maximum sessions reached (1/1 sessions open in table "default")');
    expect(status.details.map((x) => x.type)).to.deep.equal(["google.rpc.ErrorInfo"]);
    const info = ErrorInfo.decode(Buffer.from(status.details[0]!.value, "base64"));
    expect(info.reason).to.equal("SESSION_LIMIT_REACHED");
    expect(info.domain).to.equal("sessionregistry.v1");
    expect(Object.fromEntries(info.metadata)).to.deep.equal({ table: "default", current: "1", max: "1" });
  });

  it("reads INVALID_ARGUMENT with an ErrorInfo and a BadRequest naming each field", async () => {
    const status = errorOf(await curl("Register", { table: "bad table", session: { id: "a b", project_path: "relative" } }));
    expect(status.code).to.equal("invalid_argument");
    expect(status.details.map((x) => x.type)).to.deep.equal(["google.rpc.ErrorInfo", "google.rpc.BadRequest"]);
    const bad = BadRequest.decode(Buffer.from(status.details[1]!.value, "base64"));
    expect(bad.fieldViolations.map((v) => v.field)).to.deep.equal(["table", "session.id", "session.project_path"]);
  });
});
