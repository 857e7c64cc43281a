/**
 * The google.rpc.Status a failed call carries on the wire: one ErrorInfo
 * with its reason and metadata for every error, plus a BadRequest for
 * INVALID_ARGUMENT.
 */
import { expect } from "chai";
import { status } from "@session-registry/client";
import { Session as SessionMessage } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { uniqueName } from "../../helpers/daemon.js";
import { rawError, wireDetails } from "../../helpers/raw.js";
import { LIMITS, type RegistryFixture } from "./fixture.js";

export function errorDetailsTests(fx: RegistryFixture): void {
  describe("error details on the wire", () => {
    /**
     * Reads the google.rpc.Status of a failed raw call and checks what every
     * error must carry; returns the ErrorInfo metadata.
     */
    async function details(
      call: Promise<unknown>,
      code: status,
      reason: string,
    ): Promise<{ metadata: Map<string, string>; violations: { field: string; description: string }[] }> {
      const err = await rawError(call);
      expect(err.code, `${reason}: grpc code`).to.equal(code);
      const wire = wireDetails(err.metadata);
      expect(wire.status.code).to.equal(code);
      expect(wire.status.message).to.equal(err.details);
      expect(wire.errorInfos).to.have.length(1);
      const info = wire.errorInfos[0]!;
      expect(info.domain).to.equal("sessionregistry.v1");
      expect(info.reason).to.equal(reason);
      const expectedTypes = ["type.googleapis.com/google.rpc.ErrorInfo"];
      if (code === status.INVALID_ARGUMENT) expectedTypes.push("type.googleapis.com/google.rpc.BadRequest");
      expect([...wire.typeUrls].sort()).to.deep.equal(expectedTypes.sort());
      const violations = wire.badRequests.flatMap((b) => b.fieldViolations.map((v) => ({ field: v.field, description: v.description })));
      return { metadata: info.metadata, violations };
    }

    function session(partial: { id?: string; projectPath?: string; name?: string }): SessionMessage {
      return SessionMessage.fromPartial(partial);
    }

    it("carries INVALID_ARGUMENT with a BadRequest naming the bad field", async () => {
      const table = await fx.newTable();
      const { violations } = await details(
        fx.raw.register({ requestId: "", table, session: session({ projectPath: "not/absolute" }) }),
        status.INVALID_ARGUMENT,
        "INVALID_ARGUMENT",
      );
      expect(violations.map((v) => v.field)).to.deep.equal(["session.project_path"]);
      expect(violations[0]!.description).to.not.equal("");
    });

    it("carries TABLE_NOT_FOUND with the table", async () => {
      const table = uniqueName("missing");
      const { metadata } = await details(fx.raw.getTable({ table }), status.NOT_FOUND, "TABLE_NOT_FOUND");
      expect(Object.fromEntries(metadata)).to.deep.equal({ table });
    });

    it("carries TABLE_EXISTS with the table and its limit", async () => {
      const table = await fx.newTable(3);
      const { metadata } = await details(fx.raw.createTable({ table, maxSessions: 4 }), status.ALREADY_EXISTS, "TABLE_EXISTS");
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, max_sessions: "3" });
    });

    it("carries TABLE_NOT_EMPTY with the table and its session count", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 2);
      const { metadata } = await details(fx.raw.deleteTable({ table, force: false }), status.FAILED_PRECONDITION, "TABLE_NOT_EMPTY");
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_count: "2" });
    });

    it("carries TABLE_LIMIT_REACHED with current and max", async () => {
      await fx.withOwnDaemon({ ...LIMITS, defaultMaxSessions: 10, maxTables: 2 }, async (c, own) => {
        // `default` is one of the two.
        expect((await c.createTable({ table: "second" })).created).to.equal(true);
        const { metadata } = await details(
          own.rawClient().createTable({ table: "third", maxSessions: 0 }),
          status.RESOURCE_EXHAUSTED,
          "TABLE_LIMIT_REACHED",
        );
        expect(Object.fromEntries(metadata)).to.deep.equal({ current: "2", max: "2" });
        // An existing table is still returned: idempotent creates are no new tables.
        expect((await c.createTable({ table: "second" })).created).to.equal(false);
        await c.deleteTable("second");
        expect((await c.createTable({ table: "third" })).created).to.equal(true);
      });
    });

    it("carries SESSION_NOT_FOUND with the table and the session id", async () => {
      const table = await fx.newTable();
      const { metadata } = await details(
        fx.raw.lookup({ table, key: { $case: "id", value: "ghost" } }),
        status.NOT_FOUND,
        "SESSION_NOT_FOUND",
      );
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "ghost" });
    });

    it("carries SESSION_EXISTS with the table and the session id", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      const { metadata } = await details(
        fx.raw.register({ requestId: "", table, session: session({ id: "s1", projectPath: "/other" }) }),
        status.ALREADY_EXISTS,
        "SESSION_EXISTS",
      );
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "s1" });
    });

    it("carries SESSION_LIMIT_REACHED with the table, current and max", async () => {
      const table = await fx.newTable(2);
      await fx.fill(table, 2);
      const { metadata } = await details(
        fx.raw.register({ requestId: "", table, session: session({ projectPath: "/third" }) }),
        status.RESOURCE_EXHAUSTED,
        "SESSION_LIMIT_REACHED",
      );
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, current: "2", max: "2" });
    });

    it("carries PROJECT_ALREADY_OPEN with the table, the holder's id and the path", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      const { metadata } = await details(
        fx.raw.register({ requestId: "", table, session: session({ id: "second", projectPath: "/p/s1/" }) }),
        status.ALREADY_EXISTS,
        "PROJECT_ALREADY_OPEN",
      );
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "s1", project_path: "/p/s1" });
    });

    it("carries REVISION_MISMATCH with the table, the session id and its current revision", async () => {
      const table = await fx.newTable();
      const [s1] = await fx.fill(table, 1);
      const { metadata } = await details(
        fx.raw.remove({ requestId: "", table, id: "s1", expectedRevision: s1!.revision + 1000, allowMissing: false }),
        status.ABORTED,
        "REVISION_MISMATCH",
      );
      expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "s1", current_revision: String(s1!.revision) });
    });
  });
}
