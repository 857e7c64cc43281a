/**
 * Register: the session it stores and returns, the id, path and limit checks,
 * tables kept apart, and the order in which the checks are reported.
 */
import { expect } from "chai";
import {
  InvalidArgumentError,
  ProjectAlreadyOpenError,
  SessionExistsError,
  SessionLimitReachedError,
  SessionNotFoundError,
  status,
  TableNotFoundError,
} from "@session-registry/client";
import { Session as SessionMessage } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { expectError, uniqueName } from "../../helpers/daemon.js";
import type { RegistryFixture } from "./fixture.js";

export function registerTests(fx: RegistryFixture): void {
  describe("register", () => {
    it("returns the session as stored, with every field filled in", async () => {
      const table = await fx.newTable();
      const before = Date.now();
      const s = await fx.client.register(
        { id: "sess-1", name: "My Project", projectPath: "/home/u//proj/./x/", metadata: { tool: "editor", pid: "42" } },
        { table },
      );
      const after = Date.now();
      expect(s.id).to.equal("sess-1");
      expect(s.name).to.equal("My Project");
      expect(s.projectPath).to.equal("/home/u/proj/x");
      expect(s.metadata).to.deep.equal(
        new Map([
          ["tool", "editor"],
          ["pid", "42"],
        ]),
      );
      expect(s.createTime).to.be.instanceOf(Date);
      expect(s.createTime!.getTime()).to.be.within(before, after);
      expect(s.updateTime).to.deep.equal(s.createTime);
      expect(s.revision).to.be.greaterThan(0);
      expect(s.revision).to.equal((await fx.client.getTable(table)).revision);
      expect(s.ttl).to.equal(undefined);
      expect(s.expireTime).to.equal(undefined);
    });

    it("stores exactly what it returned: lookup and list give the same session", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "same", projectPath: "/same", metadata: new Map([["a", "b"]]) }, { table });
      expect(await fx.client.lookup({ id: "same" }, { table })).to.deep.equal(s);
      expect((await fx.client.listPage({ table })).sessions).to.deep.equal([s]);
    });

    it("makes a UUIDv4 id when none is given, a different one each time", async () => {
      const table = await fx.newTable();
      const a = await fx.client.register({ projectPath: "/uuid/a" }, { table });
      const b = await fx.client.register({ projectPath: "/uuid/b", id: "" }, { table });
      const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
      expect(a.id).to.match(uuidV4);
      expect(b.id).to.match(uuidV4);
      expect(a.id).to.not.equal(b.id);
    });

    it("names a session without a name after the last segment of its path", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ projectPath: "/home/u/my-repo/" }, { table });
      expect(s.name).to.equal("my-repo");
    });

    it("refuses a duplicate id with SESSION_EXISTS and keeps the first session", async () => {
      const table = await fx.newTable();
      const first = await fx.client.register({ id: "dup", projectPath: "/one" }, { table });
      const err = await expectError(fx.client.register({ id: "dup", projectPath: "/two" }, { table }), SessionExistsError);
      expect(err.code).to.equal(status.ALREADY_EXISTS);
      expect(err.reason).to.equal("SESSION_EXISTS");
      expect(err.sessionId).to.equal("dup");
      expect(err.metadata).to.include({ table, session_id: "dup" });
      expect(await fx.client.lookup({ id: "dup" }, { table })).to.deep.equal(first);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
      await expectError(fx.client.lookup({ projectPath: "/two" }, { table }), SessionNotFoundError);
    });

    it("refuses a project path that is already open with PROJECT_ALREADY_OPEN naming the holder", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "holder", projectPath: "/proj" }, { table });
      const err = await expectError(fx.client.register({ id: "other", projectPath: "/proj" }, { table }), ProjectAlreadyOpenError);
      expect(err.code).to.equal(status.ALREADY_EXISTS);
      expect(err.reason).to.equal("PROJECT_ALREADY_OPEN");
      expect(err.sessionId).to.equal("holder");
      expect(err.projectPath).to.equal("/proj");
      expect(err.metadata).to.include({ table, session_id: "holder", project_path: "/proj" });
      await expectError(fx.client.lookup({ id: "other" }, { table }), SessionNotFoundError);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
    });

    it("treats a path spelled differently but normalizing to an open one as already open", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "holder", projectPath: "/a/b/c" }, { table });
      for (const spelling of ["/a/b/c/", "/a//b/c", "/a/./b/c", "//a/b/c//"]) {
        const err = await expectError(fx.client.register({ projectPath: spelling }, { table }), ProjectAlreadyOpenError);
        expect(err.sessionId).to.equal("holder");
      }
    });

    it("allows exactly the table's limit of sessions and refuses the next with SESSION_LIMIT_REACHED", async () => {
      const table = await fx.newTable(10);
      await fx.fill(table, 10);
      expect((await fx.client.getTable(table)).sessionCount).to.equal(10);
      const err = await expectError(fx.client.register({ id: "s11", projectPath: "/p/s11" }, { table }), SessionLimitReachedError);
      expect(err.code).to.equal(status.RESOURCE_EXHAUSTED);
      expect(err.reason).to.equal("SESSION_LIMIT_REACHED");
      expect(err.current).to.equal(10);
      expect(err.max).to.equal(10);
      expect(err.metadata).to.include({ table, current: "10", max: "10" });
      expect((await fx.client.getTable(table)).sessionCount).to.equal(10);
      await expectError(fx.client.lookup({ id: "s11" }, { table }), SessionNotFoundError);
    });

    it("enforces each table's own limit", async () => {
      const one = await fx.newTable(1);
      await fx.client.register({ projectPath: "/only" }, { table: one });
      const err = await expectError(fx.client.register({ projectPath: "/second" }, { table: one }), SessionLimitReachedError);
      expect(err.current).to.equal(1);
      expect(err.max).to.equal(1);
    });

    it("allows one name for several sessions", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "n1", name: "same", projectPath: "/n/1" }, { table });
      await fx.client.register({ id: "n2", name: "same", projectPath: "/n/2" }, { table });
      await fx.client.register({ id: "n3", name: "same", projectPath: "/n/3" }, { table });
      expect((await fx.client.getTable(table)).sessionCount).to.equal(3);
    });

    it("keeps tables apart: one id and one path may be registered in two tables", async () => {
      const t1 = await fx.newTable();
      const t2 = await fx.newTable();
      await fx.client.register({ id: "x", projectPath: "/shared" }, { table: t1 });
      await fx.client.register({ id: "x", projectPath: "/shared" }, { table: t2 });
      expect((await fx.client.lookup({ id: "x" }, { table: t1 })).projectPath).to.equal("/shared");
      expect((await fx.client.lookup({ id: "x" }, { table: t2 })).projectPath).to.equal("/shared");
      await fx.client.remove("x", { table: t1 });
      expect((await fx.client.getTable(t2)).sessionCount).to.equal(1);
    });

    it("ignores the output-only fields a client sends and stores server values", async () => {
      const table = await fx.newTable();
      const before = Date.now();
      const res = await fx.raw.register({
        requestId: "",
        table,
        session: SessionMessage.fromPartial({
          id: "out-only",
          projectPath: "/out/only",
          createTime: new Date(1000),
          updateTime: new Date(2000),
          revision: 987654,
          expireTime: new Date(3000),
        }),
      });
      const s = res.session!;
      expect(s.createTime!.getTime()).to.be.at.least(before);
      expect(s.updateTime!.getTime()).to.be.at.least(before);
      expect(s.revision).to.equal((await fx.client.getTable(table)).revision);
      expect(s.revision).to.not.equal(987654);
      expect(s.expireTime).to.equal(undefined);
      expect(s.ttl).to.equal(undefined);
      expect(await fx.client.lookup({ id: "out-only" }, { table })).to.deep.equal(s);
    });

    it("registers into the default table when the request's table field is empty", async () => {
      const id = uniqueName("in-default");
      const before = (await fx.client.getTable("default")).sessionCount;
      try {
        const res = await fx.raw.register({
          requestId: "",
          table: "",
          session: SessionMessage.fromPartial({ id, projectPath: `/default/${id}` }),
        });
        expect(res.session!.id).to.equal(id);
        expect((await fx.client.lookup({ id }, { table: "default" })).id).to.equal(id);
        expect((await fx.client.getTable("default")).sessionCount).to.equal(before + 1);
        const found = await fx.raw.lookup({ table: "", key: { $case: "id", value: id } });
        expect(found.session!.id).to.equal(id);
      } finally {
        await fx.client.remove(id, { table: "default", allowMissing: true });
      }
    });
  });

  describe("the order of register's checks", () => {
    it("reports the limit before a duplicate id on a full table", async () => {
      const table = await fx.newTable(2);
      await fx.fill(table, 2);
      const err = await expectError(fx.client.register({ id: "s1", projectPath: "/fresh" }, { table }), SessionLimitReachedError);
      expect(err.reason).to.equal("SESSION_LIMIT_REACHED");
    });

    it("reports the limit before a duplicate path on a full table", async () => {
      const table = await fx.newTable(2);
      await fx.fill(table, 2);
      await expectError(fx.client.register({ id: "fresh", projectPath: "/p/s1" }, { table }), SessionLimitReachedError);
    });

    it("reports a duplicate id before a duplicate path", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 2);
      // id of s1, path of s2: both clash, with different sessions.
      const err = await expectError(fx.client.register({ id: "s1", projectPath: "/p/s2" }, { table }), SessionExistsError);
      expect(err.reason).to.equal("SESSION_EXISTS");
      expect(err.sessionId).to.equal("s1");
    });

    it("reports invalid input before an unknown table", async () => {
      const table = uniqueName("missing");
      const err = await expectError(fx.client.register({ projectPath: "relative/path" }, { table }), InvalidArgumentError);
      expect(err.fieldViolations.map((v) => v.field)).to.include("session.project_path");
    });

    it("reports an unknown table before anything that depends on a table's state", async () => {
      const table = await fx.newTable(1);
      await fx.fill(table, 1);
      await fx.client.deleteTable(table, { force: true });
      await expectError(fx.client.register({ id: "s1", projectPath: "/p/s1" }, { table }), TableNotFoundError);
    });
  });
}
