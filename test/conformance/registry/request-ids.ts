/**
 * Writes with a request_id: a repeat of a Register, Update or Remove gets the
 * first result and writes nothing, per table and per method, and a
 * malformed request_id is refused.
 */
import { expect } from "chai";
import {
  InvalidArgumentError,
  ProjectAlreadyOpenError,
  RevisionMismatchError,
  SessionExistsError,
  SessionLimitReachedError,
  SessionNotFoundError,
} from "@session-registry/client";

import { expectError } from "../../helpers/daemon.js";
import type { RegistryFixture } from "./fixture.js";

export function requestIdTests(fx: RegistryFixture): void {
  describe("writes with a request_id (safe retries)", () => {
    it("returns the first result to a repeated request_id and registers nothing more", async () => {
      const table = await fx.newTable();
      const first = await fx.client.register({ id: "r1", projectPath: "/req/one", requestId: "req-1" }, { table });
      const revision = (await fx.client.getTable(table)).revision;
      const again = await fx.client.register({ id: "r1", projectPath: "/req/one", requestId: "req-1" }, { table });
      expect(again).to.deep.equal(first);
      const t = await fx.client.getTable(table);
      expect(t.sessionCount).to.equal(1);
      expect(t.revision, "a repeat writes nothing").to.equal(revision);
    });

    it("returns the same server-made id to a repeat of a Register without id", async () => {
      const table = await fx.newTable();
      const first = await fx.client.register({ projectPath: "/req/auto", requestId: "auto:1" }, { table });
      const again = await fx.client.register({ projectPath: "/req/auto", requestId: "auto:1" }, { table });
      expect(again.id).to.equal(first.id);
      expect(again.revision).to.equal(first.revision);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("returns the session as first registered even after it was updated or removed", async () => {
      const table = await fx.newTable();
      const first = await fx.client.register({ id: "r1", projectPath: "/req/upd", requestId: "req.upd" }, { table });
      await fx.client.update({ id: "r1", table, name: "renamed" });
      expect(await fx.client.register({ id: "r1", projectPath: "/req/upd", requestId: "req.upd" }, { table })).to.deep.equal(first);
      await fx.client.remove("r1", { table });
      expect(await fx.client.register({ id: "r1", projectPath: "/req/upd", requestId: "req.upd" }, { table })).to.deep.equal(first);
      expect((await fx.client.getTable(table)).sessionCount, "the repeat does not register it again").to.equal(0);
    });

    it("answers a repeat before the limit: a full table still returns the first result", async () => {
      const table = await fx.newTable(1);
      const first = await fx.client.register({ id: "r1", projectPath: "/req/full", requestId: "req-full" }, { table });
      expect(await fx.client.register({ id: "r1", projectPath: "/req/full", requestId: "req-full" }, { table })).to.deep.equal(first);
    });

    it("checks another request_id as usual: PROJECT_ALREADY_OPEN, SESSION_EXISTS", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "r1", projectPath: "/req/dup", requestId: "req-a" }, { table });
      const open = await expectError(
        fx.client.register({ id: "r2", projectPath: "/req/dup", requestId: "req-b" }, { table }),
        ProjectAlreadyOpenError,
      );
      expect(open.metadata).to.include({ session_id: "r1" });
      await expectError(fx.client.register({ id: "r1", projectPath: "/req/other", requestId: "req-c" }, { table }), SessionExistsError);
      await expectError(fx.client.register({ id: "r1", projectPath: "/req/dup" }, { table }), SessionExistsError);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("keeps request_ids per table", async () => {
      const a = await fx.newTable();
      const b = await fx.newTable();
      const inA = await fx.client.register({ id: "r1", projectPath: "/req/t", requestId: "shared" }, { table: a });
      const inB = await fx.client.register({ id: "r1", projectPath: "/req/t", requestId: "shared" }, { table: b });
      expect(inB.revision).to.not.equal(inA.revision);
      expect((await fx.client.getTable(b)).sessionCount).to.equal(1);
    });

    it("remembers nothing of a failed Register: retried once it can succeed, it registers", async () => {
      const table = await fx.newTable(1);
      await fx.client.register({ id: "r1", projectPath: "/req/first" }, { table });
      await expectError(
        fx.client.register({ id: "r2", projectPath: "/req/second", requestId: "late" }, { table }),
        SessionLimitReachedError,
      );
      await fx.client.remove("r1", { table });
      const s = await fx.client.register({ id: "r2", projectPath: "/req/second", requestId: "late" }, { table });
      expect(s.id).to.equal("r2");
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("registers exactly once among concurrent attempts with one request_id", async () => {
      const table = await fx.newTable();
      const results = await Promise.all(
        Array.from({ length: 8 }, () => fx.client.register({ projectPath: "/req/race", requestId: "race" }, { table })),
      );
      expect(new Set(results.map((r) => r.id)).size).to.equal(1);
      expect(new Set(results.map((r) => r.revision)).size).to.equal(1);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("refuses a malformed request_id with INVALID_ARGUMENT on request_id", async () => {
      const table = await fx.newTable();
      for (const requestId of ["x".repeat(129), "has space", "a/b", "ünï"]) {
        const err = await expectError(fx.client.register({ projectPath: "/req/bad", requestId }, { table }), InvalidArgumentError);
        expect(err.fieldViolations.map((v) => v.field)).to.deep.equal(["request_id"]);
      }
      await fx.client.register({ projectPath: "/req/bad", requestId: "x".repeat(128) }, { table });
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("returns the first result to a repeated Update, without REVISION_MISMATCH or a second write", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "u1", projectPath: "/req/u1" }, { table });
      const first = await fx.client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-1" });
      const revision = (await fx.client.getTable(table)).revision;
      const again = await fx.client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-1" });
      expect(again).to.deep.equal(first);
      expect((await fx.client.getTable(table)).revision, "a repeat writes nothing").to.equal(revision);
      await expectError(
        fx.client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-2" }),
        RevisionMismatchError,
      );
      await fx.client.remove("u1", { table });
      expect(await fx.client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-1" })).to.deep.equal(
        first,
      );
    });

    it("returns the removed session to a repeated Remove instead of SESSION_NOT_FOUND", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "d1", projectPath: "/req/d1", ttlMs: 60_000 }, { table });
      const first = await fx.client.remove("d1", { table, expectedRevision: s.revision, requestId: "rm-1" });
      expect(first).to.deep.equal(s);
      const revision = (await fx.client.getTable(table)).revision;
      expect(await fx.client.remove("d1", { table, expectedRevision: s.revision, requestId: "rm-1" })).to.deep.equal(first);
      expect((await fx.client.getTable(table)).revision).to.equal(revision);
      await expectError(fx.client.remove("d1", { table, requestId: "rm-2" }), SessionNotFoundError);
    });

    it("keeps request_ids per method: one key on a Register, an Update and a Remove", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "m1", projectPath: "/req/m1", requestId: "same" }, { table });
      const u = await fx.client.update({ id: "m1", table, name: "renamed", requestId: "same" });
      expect(u.name).to.equal("renamed");
      expect(u.revision).to.be.greaterThan(s.revision);
      const d = await fx.client.remove("m1", { table, requestId: "same" });
      expect(d?.revision).to.equal(u.revision);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(0);
    });

    it("refuses a malformed request_id on Update and Remove with INVALID_ARGUMENT on request_id", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "v1", projectPath: "/req/v1" }, { table });
      const u = await expectError(fx.client.update({ id: "v1", table, name: "n", requestId: "bad id" }), InvalidArgumentError);
      expect(u.fieldViolations.map((v) => v.field)).to.deep.equal(["request_id"]);
      const d = await expectError(fx.client.remove("v1", { table, requestId: "x".repeat(129) }), InvalidArgumentError);
      expect(d.fieldViolations.map((v) => v.field)).to.deep.equal(["request_id"]);
      expect((await fx.client.lookup({ id: "v1" }, { table })).name).to.equal("v1");
    });
  });
}
