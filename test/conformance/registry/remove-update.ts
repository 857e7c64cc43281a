/**
 * Remove and Update: what each changes and frees, the expected-revision
 * checks, update masks, metadata and ttl, and output-only fields ignored.
 */
import { expect } from "chai";
import {
  InvalidArgumentError,
  ProjectAlreadyOpenError,
  RevisionMismatchError,
  SessionLimitReachedError,
  SessionNotFoundError,
  status,
} from "@session-registry/client";
import { Session as SessionMessage } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { expectError } from "../../helpers/daemon.js";
import { rawError } from "../../helpers/raw.js";
import type { RegistryFixture } from "./fixture.js";

export function removeUpdateTests(fx: RegistryFixture): void {
  describe("remove", () => {
    it("removes only that session, lowers the count and returns the session as it was", async () => {
      const table = await fx.newTable();
      const [s1, s2, s3] = await fx.fill(table, 3);
      const removed = await fx.client.remove("s2", { table });
      expect(removed).to.deep.equal(s2);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(2);
      await expectError(fx.client.lookup({ id: "s2" }, { table }), SessionNotFoundError);
      await expectError(fx.client.lookup({ projectPath: "/p/s2" }, { table }), SessionNotFoundError);
      await expectError(fx.client.lookup({ name: "s2" }, { table }), SessionNotFoundError);
      expect(await fx.client.lookup({ id: "s1" }, { table })).to.deep.equal(s1);
      expect(await fx.client.lookup({ id: "s3" }, { table })).to.deep.equal(s3);
      expect((await fx.client.listPage({ table })).sessions).to.deep.equal([s1, s3]);
    });

    it("frees a slot: a full table takes a new session after one is removed", async () => {
      const table = await fx.newTable(10);
      await fx.fill(table, 10);
      await expectError(fx.client.register({ projectPath: "/new" }, { table }), SessionLimitReachedError);
      await fx.client.remove("s4", { table });
      await fx.client.register({ id: "new", projectPath: "/new" }, { table });
      expect((await fx.client.getTable(table)).sessionCount).to.equal(10);
      await expectError(fx.client.register({ projectPath: "/newer" }, { table }), SessionLimitReachedError);
    });

    it("frees the project path and the id for a new session", async () => {
      const table = await fx.newTable();
      const old = await fx.client.register({ id: "reuse", projectPath: "/reuse" }, { table });
      await fx.client.remove("reuse", { table });
      const again = await fx.client.register({ id: "reuse", projectPath: "/reuse/" }, { table });
      expect(again.projectPath).to.equal("/reuse");
      expect(again.revision).to.be.greaterThan(old.revision);
      expect(await fx.client.lookup({ projectPath: "/reuse" }, { table })).to.deep.equal(again);
    });

    it("reports an unknown id as SESSION_NOT_FOUND", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      const err = await expectError(fx.client.remove("ghost", { table }), SessionNotFoundError);
      expect(err.code).to.equal(status.NOT_FOUND);
      expect(err.metadata).to.include({ table, session_id: "ghost" });
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("returns nothing for an unknown id when allow_missing is set", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      expect(await fx.client.remove("ghost", { table, allowMissing: true })).to.equal(undefined);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
      const s = await fx.client.remove("s1", { table, allowMissing: true });
      expect(s?.id).to.equal("s1");
    });

    it("refuses a removal at the wrong expected revision with REVISION_MISMATCH and keeps the session", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "cas", projectPath: "/cas" }, { table });
      const s2 = await fx.client.update({ table, id: "cas", name: "changed" });
      const err = await expectError(fx.client.remove("cas", { table, expectedRevision: s.revision }), RevisionMismatchError);
      expect(err.code).to.equal(status.ABORTED);
      expect(err.reason).to.equal("REVISION_MISMATCH");
      expect(err.currentRevision).to.equal(s2.revision);
      expect(err.metadata).to.include({ table, session_id: "cas", current_revision: String(s2.revision) });
      expect(await fx.client.lookup({ id: "cas" }, { table })).to.deep.equal(s2);
    });

    it("removes at the matching expected revision", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "cas", projectPath: "/cas" }, { table });
      const removed = await fx.client.remove("cas", { table, expectedRevision: s.revision });
      expect(removed).to.deep.equal(s);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(0);
    });
  });

  describe("update", () => {
    it("changes name and path, visible through lookup by id, new path and new name", async () => {
      const table = await fx.newTable();
      const [s1, , s3] = await fx.fill(table, 3);
      const s2 = await fx.client.update({ table, id: "s2", name: "New Name", projectPath: "/moved/there/" });
      expect(s2.name).to.equal("New Name");
      expect(s2.projectPath).to.equal("/moved/there");
      expect(await fx.client.lookup({ id: "s2" }, { table })).to.deep.equal(s2);
      expect(await fx.client.lookup({ projectPath: "/moved/there" }, { table })).to.deep.equal(s2);
      expect(await fx.client.lookup({ name: "New Name" }, { table })).to.deep.equal(s2);
      expect(await fx.client.lookup({ id: "s1" }, { table })).to.deep.equal(s1);
      expect(await fx.client.lookup({ id: "s3" }, { table })).to.deep.equal(s3);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(3);
    });

    it("works right after register and changes only the fields asked for", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "u", name: "keep", projectPath: "/u", metadata: { a: "1" } }, { table });
      const u = await fx.client.update({ table, id: "u", metadata: { b: "2" } });
      expect(u.id).to.equal("u");
      expect(u.name).to.equal("keep");
      expect(u.projectPath).to.equal("/u");
      expect(u.metadata).to.deep.equal(new Map([["b", "2"]]));
      expect(u.createTime).to.deep.equal(s.createTime);
      expect(u.ttl).to.equal(undefined);
    });

    it("keeps the create time, sets the update time and bumps the revision to the table's", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "t", projectPath: "/t" }, { table });
      const before = Date.now();
      const u = await fx.client.update({ table, id: "t", name: "later" });
      expect(u.createTime).to.deep.equal(s.createTime);
      expect(u.updateTime!.getTime()).to.be.at.least(before);
      expect(u.updateTime!.getTime()).to.be.at.least(s.updateTime!.getTime());
      expect(u.revision).to.be.greaterThan(s.revision);
      expect(u.revision).to.equal((await fx.client.getTable(table)).revision);
    });

    it("reports an unknown id as SESSION_NOT_FOUND", async () => {
      const table = await fx.newTable();
      const err = await expectError(fx.client.update({ table, id: "ghost", name: "x" }), SessionNotFoundError);
      expect(err.code).to.equal(status.NOT_FOUND);
      expect(err.metadata).to.include({ table, session_id: "ghost" });
    });

    it("refuses a project path another session holds with PROJECT_ALREADY_OPEN and changes nothing", async () => {
      const table = await fx.newTable();
      const [s1] = await fx.fill(table, 2);
      const err = await expectError(
        fx.client.update({ table, id: "s1", name: "would-be", projectPath: "/p/s2/" }),
        ProjectAlreadyOpenError,
      );
      expect(err.sessionId).to.equal("s2");
      expect(err.projectPath).to.equal("/p/s2");
      expect(await fx.client.lookup({ id: "s1" }, { table })).to.deep.equal(s1);
    });

    it("accepts a session's own project path, in any spelling", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      const u = await fx.client.update({ table, id: "s1", projectPath: "/p//s1/" });
      expect(u.projectPath).to.equal("/p/s1");
      expect(await fx.client.lookup({ projectPath: "/p/s1" }, { table })).to.deep.equal(u);
    });

    it("frees the old path after a path change", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      await fx.client.update({ table, id: "s1", projectPath: "/p/elsewhere" });
      await expectError(fx.client.lookup({ projectPath: "/p/s1" }, { table }), SessionNotFoundError);
      const taker = await fx.client.register({ id: "taker", projectPath: "/p/s1" }, { table });
      expect(await fx.client.lookup({ projectPath: "/p/s1" }, { table })).to.deep.equal(taker);
      expect((await fx.client.lookup({ projectPath: "/p/elsewhere" }, { table })).id).to.equal("s1");
    });

    it("keeps a session's name when only its path changes", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ projectPath: "/repos/one" }, { table });
      expect(s.name).to.equal("one");
      const u = await fx.client.update({ table, id: s.id, projectPath: "/repos/two" });
      expect(u.name).to.equal("one");
    });

    it("derives the name again from the path when the mask names name and name is empty", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ name: "custom", projectPath: "/repos/derived" }, { table });
      const u = await fx.client.update({ table, id: s.id, name: "", updateMask: ["name"] });
      expect(u.name).to.equal("derived");
      const moved = await fx.client.update({
        table,
        id: s.id,
        name: "",
        projectPath: "/repos/again",
        updateMask: ["name", "project_path"],
      });
      expect(moved.name).to.equal("again");
    });

    it("allows renaming to a name another session has", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 2);
      const u = await fx.client.update({ table, id: "s2", name: "s1" });
      expect(u.name).to.equal("s1");
      expect((await fx.client.lookup({ name: "s1" }, { table })).id).to.equal("s1");
    });

    it("replaces the metadata as a whole, and clears it with an empty map", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "m", projectPath: "/m", metadata: { a: "1", b: "2" } }, { table });
      const replaced = await fx.client.update({ table, id: "m", metadata: { c: "3" } });
      expect(replaced.metadata).to.deep.equal(new Map([["c", "3"]]));
      const cleared = await fx.client.update({ table, id: "m", metadata: {} });
      expect(cleared.metadata.size).to.equal(0);
      expect((await fx.client.lookup({ id: "m" }, { table })).metadata.size).to.equal(0);
    });

    it("sets a ttl with its expire time, and clears both", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "ttl", projectPath: "/ttl" }, { table });
      const withTtl = await fx.client.update({ table, id: "ttl", ttlMs: 60_000 });
      expect(withTtl.ttl).to.deep.equal({ seconds: 60, nanos: 0 });
      expect(withTtl.expireTime).to.be.instanceOf(Date);
      expect(withTtl.expireTime!.getTime()).to.be.greaterThan(s.createTime!.getTime());
      expect(await fx.client.lookup({ id: "ttl" }, { table })).to.deep.equal(withTtl);
      const cleared = await fx.client.update({ table, id: "ttl", ttlMs: null });
      expect(cleared.ttl).to.equal(undefined);
      expect(cleared.expireTime).to.equal(undefined);
      expect(await fx.client.lookup({ id: "ttl" }, { table })).to.deep.equal(cleared);
    });

    it("refuses an update at the wrong expected revision with REVISION_MISMATCH and changes nothing", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "cas", projectPath: "/cas" }, { table });
      const s2 = await fx.client.update({ table, id: "cas", name: "second" });
      const err = await expectError(
        fx.client.update({ table, id: "cas", name: "third", expectedRevision: s.revision }),
        RevisionMismatchError,
      );
      expect(err.code).to.equal(status.ABORTED);
      expect(err.currentRevision).to.equal(s2.revision);
      expect(await fx.client.lookup({ id: "cas" }, { table })).to.deep.equal(s2);
    });

    it("updates at the matching expected revision", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "cas", projectPath: "/cas" }, { table });
      const u = await fx.client.update({ table, id: "cas", name: "ok", expectedRevision: s.revision });
      expect(u.name).to.equal("ok");
      expect(u.revision).to.be.greaterThan(s.revision);
    });

    it("refuses an update that names no field and sets none with INVALID_ARGUMENT", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 1);
      const err = await expectError(fx.client.update({ table, id: "s1" }), InvalidArgumentError);
      expect(err.fieldViolations.map((v) => v.field)).to.include("update_mask");
      const wire = await rawError(
        fx.raw.update({
          requestId: "",
          table,
          session: SessionMessage.fromPartial({ id: "s1", revision: 5 }),
          updateMask: [],
          expectedRevision: 0,
        }),
      );
      expect(wire.code).to.equal(status.INVALID_ARGUMENT);
    });

    it("ignores the output-only fields a client sends", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "oo", projectPath: "/oo" }, { table });
      const res = await fx.raw.update({
        requestId: "",
        table,
        session: SessionMessage.fromPartial({
          id: "oo",
          name: "renamed",
          createTime: new Date(1000),
          updateTime: new Date(2000),
          revision: 424242,
          expireTime: new Date(3000),
        }),
        updateMask: ["name"],
        expectedRevision: 0,
      });
      const u = res.session!;
      expect(u.name).to.equal("renamed");
      expect(u.createTime).to.deep.equal(s.createTime);
      expect(u.updateTime!.getTime()).to.be.at.least(s.updateTime!.getTime());
      expect(u.revision).to.equal((await fx.client.getTable(table)).revision);
      expect(u.expireTime).to.equal(undefined);
    });
  });
}
