/**
 * What the daemon and its tables report: server info, creating, listing and
 * deleting tables (the default table among them), and the session counts and
 * revisions a table keeps.
 */
import { expect } from "chai";
import {
  ProjectAlreadyOpenError,
  SessionLimitReachedError,
  SessionNotFoundError,
  status,
  TableExistsError,
  TableNotEmptyError,
  TableNotFoundError,
} from "@session-registry/client";

import { packageVersion } from "../../../src/version.js";
import { expectError, uniqueName } from "../../helpers/daemon.js";
import { DEFAULT_MAX_SESSIONS, LIMITS, type RegistryFixture, type Session } from "./fixture.js";

/** Byte order of two strings, as ListTables promises. */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

export function tableTests(fx: RegistryFixture): void {
  describe("server info", () => {
    it("names the daemon's version and its store, available", async () => {
      expect(await fx.client.serverInfo()).to.deep.equal({ version: packageVersion(), store: fx.storeName, storeAvailable: true });
    });
  });

  describe("tables", () => {
    it("has a table named default with the daemon's session limit right after start-up", async () => {
      const table = await fx.client.getTable();
      expect(table.name).to.equal("default");
      expect(table.maxSessions).to.equal(DEFAULT_MAX_SESSIONS);
      const byName = await fx.client.getTable("default");
      expect(byName.name).to.equal("default");
    });

    it("creates a table with the given limit, an empty count and a create time", async () => {
      const name = uniqueName();
      const { table, created } = await fx.client.createTable({ table: name, maxSessions: 3 });
      expect(created).to.equal(true);
      expect(table.name).to.equal(name);
      expect(table.maxSessions).to.equal(3);
      expect(table.sessionCount).to.equal(0);
      expect(table.createTime).to.be.instanceOf(Date);
      const got = await fx.client.getTable(name);
      expect(got.maxSessions).to.equal(3);
      expect(got.sessionCount).to.equal(0);
      expect(got.createTime).to.deep.equal(table.createTime);
    });

    it("gives a table created with max_sessions 0 the daemon's default limit", async () => {
      const name = uniqueName();
      const { table } = await fx.client.createTable({ table: name });
      expect(table.maxSessions).to.equal(DEFAULT_MAX_SESSIONS);
    });

    it("returns the existing table with created=false when it is created again with the same limit", async () => {
      const name = uniqueName();
      const first = await fx.client.createTable({ table: name, maxSessions: 4 });
      await fx.client.register({ projectPath: "/x" }, { table: name });
      const again = await fx.client.createTable({ table: name, maxSessions: 4 });
      expect(again.created).to.equal(false);
      expect(again.table.name).to.equal(name);
      expect(again.table.maxSessions).to.equal(4);
      expect(again.table.sessionCount).to.equal(1);
      expect(again.table.createTime).to.deep.equal(first.table.createTime);
    });

    it("returns the existing table with created=false when it is created again with max_sessions 0", async () => {
      const name = uniqueName();
      await fx.client.createTable({ table: name, maxSessions: 4 });
      const again = await fx.client.createTable({ table: name, maxSessions: 0 });
      expect(again.created).to.equal(false);
      expect(again.table.maxSessions).to.equal(4);
    });

    it("refuses to create an existing table with a different limit with TABLE_EXISTS", async () => {
      const name = uniqueName();
      await fx.client.createTable({ table: name, maxSessions: 4 });
      const err = await expectError(fx.client.createTable({ table: name, maxSessions: 5 }), TableExistsError);
      expect(err.code).to.equal(status.ALREADY_EXISTS);
      expect(err.reason).to.equal("TABLE_EXISTS");
      expect(err.metadata).to.include({ table: name, max_sessions: "4" });
      expect((await fx.client.getTable(name)).maxSessions).to.equal(4);
    });

    it("lists every table in byte order of name (uppercase before lowercase)", async () => {
      const suffix = uniqueName("x");
      const names = [`z${suffix}`, `a${suffix}`, `B${suffix}`, `a.${suffix}`, `a-${suffix}`, `0${suffix}`, `A${suffix}`];
      for (const name of names) await fx.client.createTable({ table: name });
      const listed = (await fx.client.listTables()).map((t) => t.name);
      expect(listed).to.include.members([...names, "default"]);
      const sorted = [...listed].sort(byteCompare);
      expect(listed).to.deep.equal(sorted);
      const ours = listed.filter((n) => names.includes(n));
      expect(ours).to.deep.equal([`0${suffix}`, `A${suffix}`, `B${suffix}`, `a-${suffix}`, `a.${suffix}`, `a${suffix}`, `z${suffix}`]);
    });

    it("reports each listed table with its limit and session count", async () => {
      const name = await fx.newTable(7);
      await fx.fill(name, 2);
      const listed = (await fx.client.listTables()).find((t) => t.name === name);
      expect(listed).to.not.equal(undefined);
      expect(listed!.maxSessions).to.equal(7);
      expect(listed!.sessionCount).to.equal(2);
    });

    it("reports an unknown table as TABLE_NOT_FOUND", async () => {
      const name = uniqueName("missing");
      const err = await expectError(fx.client.getTable(name), TableNotFoundError);
      expect(err.code).to.equal(status.NOT_FOUND);
      expect(err.reason).to.equal("TABLE_NOT_FOUND");
      expect(err.metadata).to.include({ table: name });
    });

    it("refuses every session call on an unknown table with TABLE_NOT_FOUND", async () => {
      const table = uniqueName("missing");
      await expectError(fx.client.register({ projectPath: "/x" }, { table }), TableNotFoundError);
      await expectError(fx.client.lookup({ id: "x" }, { table }), TableNotFoundError);
      await expectError(fx.client.listPage({ table }), TableNotFoundError);
      await expectError(fx.client.update({ table, id: "x", name: "n" }), TableNotFoundError);
      await expectError(fx.client.remove("x", { table }), TableNotFoundError);
      await expectError(fx.client.remove("x", { table, allowMissing: true }), TableNotFoundError);
    });

    it("refuses to delete an unknown table with TABLE_NOT_FOUND", async () => {
      await expectError(fx.client.deleteTable(uniqueName("missing")), TableNotFoundError);
    });

    it("deletes an empty table, after which it is not found", async () => {
      const name = await fx.newTable();
      await fx.client.deleteTable(name);
      await expectError(fx.client.getTable(name), TableNotFoundError);
      expect((await fx.client.listTables()).map((t) => t.name)).to.not.include(name);
    });

    it("refuses to delete a table that holds sessions with TABLE_NOT_EMPTY and keeps its sessions", async () => {
      const name = await fx.newTable();
      const [s1] = await fx.fill(name, 2);
      const err = await expectError(fx.client.deleteTable(name), TableNotEmptyError);
      expect(err.code).to.equal(status.FAILED_PRECONDITION);
      expect(err.reason).to.equal("TABLE_NOT_EMPTY");
      expect(err.metadata).to.include({ table: name, session_count: "2" });
      expect((await fx.client.getTable(name)).sessionCount).to.equal(2);
      expect(await fx.client.lookup({ id: s1!.id }, { table: name })).to.deep.equal(s1);
    });

    it("deletes a table that holds sessions when forced, and a re-created table starts empty", async () => {
      const name = await fx.newTable();
      await fx.fill(name, 3);
      await fx.client.deleteTable(name, { force: true });
      await expectError(fx.client.getTable(name), TableNotFoundError);
      await expectError(fx.client.lookup({ id: "s1" }, { table: name }), TableNotFoundError);
      const { table, created } = await fx.client.createTable({ table: name, maxSessions: 2 });
      expect(created).to.equal(true);
      expect(table.sessionCount).to.equal(0);
      expect(table.maxSessions).to.equal(2);
      await expectError(fx.client.lookup({ id: "s1" }, { table: name }), SessionNotFoundError);
      await expectError(fx.client.lookup({ projectPath: "/p/s1" }, { table: name }), SessionNotFoundError);
      await fx.client.register({ id: "s1", projectPath: "/p/s1" }, { table: name });
    });

    it("lets the default table be deleted and created again", async () => {
      await fx.withOwnDaemon(LIMITS, async (c) => {
        await c.register({ projectPath: "/in/default" });
        await expectError(c.deleteTable("default"), TableNotEmptyError);
        await c.deleteTable("default", { force: true });
        await expectError(c.getTable(), TableNotFoundError);
        await expectError(c.register({ projectPath: "/in/default" }), TableNotFoundError);
        const { table, created } = await c.createTable({ table: "default" });
        expect(created).to.equal(true);
        expect(table.maxSessions).to.equal(DEFAULT_MAX_SESSIONS);
        expect(table.sessionCount).to.equal(0);
        await c.register({ projectPath: "/in/default" });
        expect((await c.getTable()).sessionCount).to.equal(1);
      });
    });
  });

  describe("counts and revisions", () => {
    it("counts 0, then 1, 2 and 3 sessions as they are registered", async () => {
      const table = await fx.newTable();
      expect((await fx.client.getTable(table)).sessionCount).to.equal(0);
      for (let i = 1; i <= 3; i++) {
        await fx.client.register({ projectPath: `/count/${i}` }, { table });
        expect((await fx.client.getTable(table)).sessionCount).to.equal(i);
      }
    });

    it("bumps the table revision on every write and stamps the written session with it", async () => {
      const table = await fx.newTable();
      let last = (await fx.client.getTable(table)).revision;
      const expectBumped = async (session: Session | undefined): Promise<void> => {
        const now = (await fx.client.getTable(table)).revision;
        expect(now).to.be.greaterThan(last);
        if (session !== undefined) expect(session.revision).to.equal(now);
        last = now;
      };
      const a = await fx.client.register({ id: "a", projectPath: "/rev/a" }, { table });
      await expectBumped(a);
      const b = await fx.client.register({ id: "b", projectPath: "/rev/b" }, { table });
      await expectBumped(b);
      expect(b.revision).to.be.greaterThan(a.revision);
      const a2 = await fx.client.update({ table, id: "a", name: "renamed" });
      await expectBumped(a2);
      const a3 = await fx.client.update({ table, id: "a", metadata: { k: "v" } });
      await expectBumped(a3);
      const removed = await fx.client.remove("b", { table });
      expect(removed!.revision).to.equal(b.revision);
      await expectBumped(undefined);
    });

    it("leaves the table revision unchanged on reads and on rejected writes", async () => {
      const table = await fx.newTable(2);
      await fx.fill(table, 2);
      const before = (await fx.client.getTable(table)).revision;
      await fx.client.lookup({ id: "s1" }, { table });
      await fx.client.lookup({ name: "s1" }, { table });
      await fx.client.listPage({ table });
      await fx.client.listTables();
      await expectError(fx.client.register({ projectPath: "/p/s3" }, { table }), SessionLimitReachedError);
      await expectError(fx.client.update({ table, id: "s1", projectPath: "/p/s2" }), ProjectAlreadyOpenError);
      await expectError(fx.client.update({ table, id: "nope", name: "x" }), SessionNotFoundError);
      await expectError(fx.client.remove("nope", { table }), SessionNotFoundError);
      await fx.client.remove("nope", { table, allowMissing: true });
      expect((await fx.client.getTable(table)).revision).to.equal(before);
    });

    it("keeps the revisions of two tables apart", async () => {
      const t1 = await fx.newTable();
      const t2 = await fx.newTable();
      await fx.fill(t1, 1);
      const r2 = (await fx.client.getTable(t2)).revision;
      await fx.fill(t1, 2, "more");
      expect((await fx.client.getTable(t2)).revision).to.equal(r2);
    });
  });
}
