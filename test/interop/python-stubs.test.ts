/**
 * The committed Python stubs (clients/python/session_registry/gen) against a
 * real daemon, from Debian's /usr/bin/python3 with python3-grpcio: a call
 * succeeds, and an error's google.rpc.Status trailer decodes with the same
 * code and message as the gRPC status, as grpc_status.rpc_status would
 * require. Fails (does not skip) when Python or grpcio is missing.
 */
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { expect } from "chai";

import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

const SCRIPT = `
import json, sys
sys.path.insert(0, "clients/python/session_registry/gen")
import grpc
from google.rpc import status_pb2, error_details_pb2
from sessionregistry.v1 import session_registry_pb2 as pb, session_registry_pb2_grpc as rpc

out = []
with grpc.insecure_channel(sys.argv[1]) as channel:
    stub = rpc.SessionRegistryStub(channel)
    for path in ["/home/py/app/", "/home/py/other", "relative"]:
        try:
            s = stub.Register(pb.RegisterRequest(session=pb.Session(project_path=path))).session
            out.append({"ok": {"name": s.name, "path": s.project_path, "revision": s.revision}})
        except grpc.RpcError as e:
            st = status_pb2.Status.FromString(dict(e.trailing_metadata())["grpc-status-details-bin"])
            err = {"code": e.code().name, "same_code": st.code == e.code().value[0], "same_message": st.message == e.details()}
            for d in st.details:
                if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo(); d.Unpack(info)
                    err["reason"], err["domain"], err["metadata"] = info.reason, info.domain, dict(info.metadata)
                if d.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                    bad = error_details_pb2.BadRequest(); d.Unpack(bad)
                    err["fields"] = [v.field for v in bad.field_violations]
            out.append({"error": err})
print(json.dumps(out))
`;

describe("a Python client on the generated stubs", function () {
  this.timeout(30_000);
  let d: TestDaemon;

  before(async () => {
    d = await startTestDaemon({ config: { maxSessions: 1 } });
  });
  after(async () => {
    await d.stop();
  });

  it("registers, then reads SESSION_LIMIT_REACHED and INVALID_ARGUMENT details from the trailer", async () => {
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile("/usr/bin/python3", ["-c", SCRIPT, d.address], { cwd: ROOT, timeout: 20_000 }, (err, out, errOut) =>
        err ? reject(new Error(`python failed: ${errOut || err.message}`)) : resolve(out),
      );
    });
    const [first, second, third] = JSON.parse(stdout) as Record<string, Record<string, unknown>>[];
    expect(first).to.have.property("ok");
    expect(first!.ok).to.include({ name: "app", path: "/home/py/app" });
    expect(second!.error).to.deep.equal({
      code: "RESOURCE_EXHAUSTED",
      same_code: true,
      same_message: true,
      reason: "SESSION_LIMIT_REACHED",
      domain: "sessionregistry.v1",
      metadata: { table: "default", current: "1", max: "1" },
    });
    expect(third!.error).to.include({ code: "INVALID_ARGUMENT", same_code: true, same_message: true, reason: "INVALID_ARGUMENT" });
    expect(third!.error!.fields).to.deep.equal(["session.project_path"]);
  });
});
