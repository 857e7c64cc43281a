/**
 * Bytes that are not a request, sent to the services the daemon serves but
 * did not generate (grpc.health.v1.Health and grpc.reflection v1 and
 * v1alpha): each is the client's mistake, answered INVALID_ARGUMENT with the
 * usual details rather than grpc-js's INTERNAL "Error deserializing
 * request", and the daemon keeps serving. Sent over node:http2 to a real
 * daemon, so that the status is read as it is on the wire.
 *
 * A message flagged compressed that does not decompress is refused by
 * grpc-js before any of the daemon's code runs; that INTERNAL is pinned
 * here, so that the note on it in docs/api.md is revisited if grpc-js changes.
 */
import { expect } from "chai";
import { gzipSync } from "node:zlib";
import { status } from "@grpc/grpc-js";

import { GetTableRequest } from "../../src/gen/sessionregistry/v1/session_registry.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { h2Call, statusDetails } from "../helpers/h2.js";

/** Not a protobuf message: a varint tag that never ends. */
const GARBAGE = Uint8Array.from([0xff, 0xff, 0xff]);

const FOREIGN_METHODS = [
  "/grpc.health.v1.Health/Check",
  "/grpc.health.v1.Health/List",
  "/grpc.health.v1.Health/Watch",
  "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
  "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

describe("undecodable requests to health and reflection", () => {
  let d: TestDaemon;

  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  for (const path of FOREIGN_METHODS) {
    it(`answers garbage bytes to ${path} with INVALID_ARGUMENT, not INTERNAL`, async () => {
      const wire = await h2Call(d.address, path, GARBAGE);
      expect(wire.code, wire.message).to.equal(status.INVALID_ARGUMENT);
      expect(wire.message).to.match(new RegExp(`^malformed request: not a valid request of ${path.replaceAll(".", "\\.")}: `));
      expect(statusDetails(wire).reasons).to.deep.equal(["INVALID_ARGUMENT"]);
    });
  }

  it("still answers health checks and reflection after them", async () => {
    // Health/Check for "" (an empty message): SERVING.
    const check = await h2Call(d.address, "/grpc.health.v1.Health/Check", new Uint8Array());
    expect(check.code).to.equal(status.OK);
    // ServerReflectionInfo with list_services "" (field 7), then the end of the stream.
    const listing = await h2Call(d.address, "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", Uint8Array.from([0x3a, 0x00]));
    expect(listing.code).to.equal(status.OK);
  });

  describe("a message that does not decompress", () => {
    it("is a request the daemon reads when it is real gzip", async () => {
      const wire = await h2Call(
        d.address,
        "/sessionregistry.v1.SessionRegistry/GetTable",
        gzipSync(GetTableRequest.encode({ table: "default" }).finish()),
        {
          compressed: true,
        },
      );
      expect(wire.code).to.equal(status.OK);
    });

    for (const path of ["/sessionregistry.v1.SessionRegistry/GetTable", "/grpc.health.v1.Health/Check"]) {
      it(`is refused by grpc-js on ${path} as INTERNAL "Failed to decompress message", before the daemon sees it`, async () => {
        const wire = await h2Call(d.address, path, Uint8Array.from(Buffer.from("not gzip at all")), { compressed: true });
        expect(wire.code).to.equal(status.INTERNAL);
        expect(wire.message).to.equal("Failed to decompress message");
        expect(wire.fields["grpc-status-details-bin"]).to.equal(undefined);
      });
    }

    it("leaves the daemon serving", async () => {
      const wire = await h2Call(
        d.address,
        "/sessionregistry.v1.SessionRegistry/GetTable",
        GetTableRequest.encode({ table: "default" }).finish(),
      );
      expect(wire.code).to.equal(status.OK);
    });
  });
});
