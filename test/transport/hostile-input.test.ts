/**
 * Bytes no well-behaved client sends: malformed messages, 64-bit integers
 * past 2^53, oversized requests. Each gets a clear status with the usual
 * details, and the daemon keeps serving. Requests are encoded by hand with
 * the daemon's own (bigint) message types, which can say what the SDK can't.
 */
import { expect } from "chai";
import { Client, credentials, status, type ServiceError } from "@grpc/grpc-js";

import { RegisterRequest, UpdateRequest, RemoveRequest } from "../../src/gen/sessionregistry/v1/session_registry.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { callBytes as rawCallBytes, wireDetails } from "../helpers/raw.js";

describe("hostile input", () => {
  let d: TestDaemon;
  let raw: Client;

  before(async () => {
    d = await startTestDaemon({ config: { maxReceiveMessageBytes: 64 * 1024 } });
    raw = new Client(d.address, credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    await d.stop();
  });

  const callBytes = (method: string, bytes: Uint8Array) => rawCallBytes(raw, method, bytes);

  function expectInvalid(err: ServiceError, field: string | undefined): void {
    expect(err.code).to.equal(status.INVALID_ARGUMENT);
    const details = wireDetails(err.metadata);
    expect(details.status.code).to.equal(status.INVALID_ARGUMENT);
    expect(details.status.message).to.equal(err.details);
    expect(details.errorInfos).to.have.length(1);
    expect(details.errorInfos[0]!.reason).to.equal("INVALID_ARGUMENT");
    expect(details.errorInfos[0]!.domain).to.equal("sessionregistry.v1");
    if (field !== undefined) {
      expect(details.badRequests[0]?.fieldViolations.map((v) => v.field)).to.include(field);
    }
  }

  it("answers bytes that are not a message with INVALID_ARGUMENT naming the message type", async () => {
    for (const method of ["GetTable", "Register", "Lookup", "List", "Update", "Remove", "CreateTable"]) {
      const err = await callBytes(method, Uint8Array.from([0xff, 0xff, 0xff]));
      expectInvalid(err, undefined);
      expect(err.details).to.equal(`malformed request: not a valid sessionregistry.v1.${method}Request: premature EOF`);
    }
  });

  it("answers a truncated field with INVALID_ARGUMENT", async () => {
    // Field 1 (table), length 10, but only two bytes follow.
    const err = await callBytes("GetTable", Uint8Array.from([0x0a, 0x0a, 0x61, 0x62]));
    expectInvalid(err, undefined);
  });

  it("names expected_revision when it exceeds every revision the server can issue", async () => {
    const update = UpdateRequest.encode(
      UpdateRequest.fromPartial({ session: { id: "x", name: "n" }, expectedRevision: 2n ** 63n }),
    ).finish();
    expectInvalid(await callBytes("Update", update), "expected_revision");
    const remove = RemoveRequest.encode(RemoveRequest.fromPartial({ id: "x", expectedRevision: 2n ** 64n - 1n })).finish();
    expectInvalid(await callBytes("Remove", remove), "expected_revision");
  });

  it("names session.ttl when its seconds are far past 24 h or negative", async () => {
    for (const seconds of [2n ** 62n, -(2n ** 62n), -1n]) {
      const bytes = RegisterRequest.encode(
        RegisterRequest.fromPartial({ session: { projectPath: "/ttl", ttl: { seconds, nanos: 0 } } }),
      ).finish();
      expectInvalid(await callBytes("Register", bytes), "session.ttl");
    }
  });

  it("refuses a request larger than the receive limit with RESOURCE_EXHAUSTED", async () => {
    const bytes = RegisterRequest.encode(
      RegisterRequest.fromPartial({ session: { projectPath: "/big", metadata: new Map([["k", "v".repeat(70 * 1024)]]) } }),
    ).finish();
    const err = await callBytes("Register", bytes);
    expect(err.code).to.equal(status.RESOURCE_EXHAUSTED);
  });

  it("keeps serving afterwards", async () => {
    const table = await d.client().getTable();
    expect(table.name).to.equal("default");
    expect(table.sessionCount).to.equal(0);
  });
});
