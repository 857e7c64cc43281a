import { expect } from "chai";
import { Metadata, status } from "@grpc/grpc-js";

import { invalidArgument, projectAlreadyOpen, sessionLimitReached, tableNotFound, type FieldViolation } from "../../src/core/errors.js";
import { createLogger, silentLogger } from "../../src/daemon/logger.js";
import { Any } from "../../src/gen/google/protobuf/any.js";
import { BadRequest, ErrorInfo } from "../../src/gen/google/rpc/error_details.js";
import { Status } from "../../src/gen/google/rpc/status.js";
import { BAD_REQUEST_TYPE_URL, ERROR_INFO_TYPE_URL, STATUS_DETAILS_KEY, toServiceError } from "../../src/transport/status.js";

/** Reads the google.rpc.Status trailer back with the generated types, as a client would. */
function decodeTrailer(metadata: Metadata): { status: Status; errorInfos: ErrorInfo[]; badRequests: BadRequest[]; other: Any[] } {
  const values = metadata.get(STATUS_DETAILS_KEY);
  expect(values, "one grpc-status-details-bin value").to.have.length(1);
  const bytes = values[0];
  expect(Buffer.isBuffer(bytes), "a -bin value is a Buffer").to.equal(true);
  const decoded = Status.decode(bytes as Buffer);
  const errorInfos: ErrorInfo[] = [];
  const badRequests: BadRequest[] = [];
  const other: Any[] = [];
  for (const detail of decoded.details) {
    if (detail.typeUrl === ERROR_INFO_TYPE_URL) errorInfos.push(ErrorInfo.decode(detail.value));
    else if (detail.typeUrl === BAD_REQUEST_TYPE_URL) badRequests.push(BadRequest.decode(detail.value));
    else other.push(detail);
  }
  return { status: decoded, errorInfos, badRequests, other };
}

describe("transport status", () => {
  describe("toServiceError", () => {
    it("maps SESSION_LIMIT_REACHED to RESOURCE_EXHAUSTED with its metadata", () => {
      const err = sessionLimitReached("default", 10, 10);
      const se = toServiceError(err, silentLogger);

      expect(se.code).to.equal(status.RESOURCE_EXHAUSTED);
      expect(se.details).to.equal(err.message);
      expect(se.message).to.equal(err.message);

      const { status: st, errorInfos, badRequests, other } = decodeTrailer(se.metadata);
      expect(st.code).to.equal(status.RESOURCE_EXHAUSTED);
      expect(st.message).to.equal(err.message);
      expect(errorInfos).to.have.length(1);
      expect(errorInfos[0]!.reason).to.equal("SESSION_LIMIT_REACHED");
      expect(errorInfos[0]!.domain).to.equal("sessionregistry.v1");
      expect(Object.fromEntries(errorInfos[0]!.metadata)).to.deep.equal({ table: "default", current: "10", max: "10" });
      expect(badRequests).to.have.length(0);
      expect(other).to.have.length(0);
    });

    it("maps TABLE_NOT_FOUND to NOT_FOUND", () => {
      const se = toServiceError(tableNotFound("nope"), silentLogger);
      expect(se.code).to.equal(status.NOT_FOUND);
      const { status: st, errorInfos } = decodeTrailer(se.metadata);
      expect(st.code).to.equal(status.NOT_FOUND);
      expect(errorInfos.map((e) => e.reason)).to.deep.equal(["TABLE_NOT_FOUND"]);
      expect(Object.fromEntries(errorInfos[0]!.metadata)).to.deep.equal({ table: "nope" });
    });

    it("maps PROJECT_ALREADY_OPEN to ALREADY_EXISTS naming the holder", () => {
      const se = toServiceError(projectAlreadyOpen("default", "/home/a/p", "s-1"), silentLogger);
      expect(se.code).to.equal(status.ALREADY_EXISTS);
      const { errorInfos } = decodeTrailer(se.metadata);
      expect(errorInfos).to.have.length(1);
      expect(errorInfos[0]!.reason).to.equal("PROJECT_ALREADY_OPEN");
      expect(Object.fromEntries(errorInfos[0]!.metadata)).to.deep.equal({
        table: "default",
        session_id: "s-1",
        project_path: "/home/a/p",
      });
    });

    it("adds a BadRequest with every field violation to INVALID_ARGUMENT", () => {
      const violations: FieldViolation[] = [
        { field: "session.project_path", description: "must be an absolute path" },
        { field: "session.name", description: "must be at most 50 code points" },
      ];
      const err = invalidArgument(violations);
      const se = toServiceError(err, silentLogger);

      expect(se.code).to.equal(status.INVALID_ARGUMENT);
      const { status: st, errorInfos, badRequests, other } = decodeTrailer(se.metadata);
      expect(st.code).to.equal(status.INVALID_ARGUMENT);
      expect(st.message).to.equal(err.message);
      expect(errorInfos).to.have.length(1);
      expect(errorInfos[0]!.reason).to.equal("INVALID_ARGUMENT");
      expect(errorInfos[0]!.domain).to.equal("sessionregistry.v1");
      expect(badRequests).to.have.length(1);
      expect(badRequests[0]!.fieldViolations.map((v) => ({ field: v.field, description: v.description }))).to.deep.equal(violations);
      expect(other).to.have.length(0);
    });

    it("turns an unexpected error into a generic INTERNAL and logs its stack", () => {
      const lines: string[] = [];
      const log = createLogger({ level: "info", destination: { write: (line: string) => void lines.push(line) } });
      const secret = new TypeError("cannot read /srv/secret/path of undefined");

      const se = toServiceError(secret, log, { method: "Register" });

      expect(se.code).to.equal(status.INTERNAL);
      expect(se.details).to.equal("internal error");
      const { status: st, errorInfos, badRequests } = decodeTrailer(se.metadata);
      expect(st.code).to.equal(status.INTERNAL);
      expect(st.message).to.equal("internal error");
      expect(errorInfos).to.have.length(1);
      expect(errorInfos[0]!.reason).to.equal("INTERNAL");
      expect(errorInfos[0]!.domain).to.equal("sessionregistry.v1");
      expect(errorInfos[0]!.metadata.size).to.equal(0);
      expect(badRequests).to.have.length(0);

      // Nothing of the original error goes on the wire.
      const wire = Buffer.concat(se.metadata.get(STATUS_DETAILS_KEY).map((v) => Buffer.from(v)));
      expect(wire.toString("latin1")).not.to.include("secret");
      expect(wire.toString("latin1")).not.to.include("TypeError");
      expect(wire.toString("latin1")).not.to.include("status.test");

      // ...but all of it goes to the log, as one JSON line.
      expect(lines).to.have.length(1);
      const record = JSON.parse(lines[0]!) as { level: string; method: string; err: { message: string; stack: string } };
      expect(record.level).to.equal("error");
      expect(record.method).to.equal("Register");
      expect(record.err.message).to.equal(secret.message);
      expect(record.err.stack).to.include("status.test");
    });

    it("treats a thrown non-Error value as unexpected", () => {
      const se = toServiceError("just a string", silentLogger);
      expect(se.code).to.equal(status.INTERNAL);
      expect(decodeTrailer(se.metadata).status.message).to.equal("internal error");
    });
  });
});
