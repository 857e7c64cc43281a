/**
 * The registry contract, as a client sees it: every test goes through a real
 * daemon over gRPC (the SDK, or the generated stubs for requests the SDK will
 * not send), never through a store's internals, so that any Store
 * implementation runs this suite unchanged.
 *
 * One daemon serves the whole suite; each test works in a table of its own.
 * `makeStore` must return an isolated store (for a shared backend such as
 * etcd: a key prefix of its own), because a few tests start a dedicated daemon
 * with a second store (deleting `default`, a small table limit).
 */
import { expect } from "chai";
import {
  InvalidArgumentError,
  ProjectAlreadyOpenError,
  RevisionMismatchError,
  SessionExistsError,
  SessionLimitReachedError,
  SessionNotFoundError,
  SessionRegistryClient,
  status,
  TableExistsError,
  TableNotEmptyError,
  TableNotFoundError,
} from "@session-registry/client";
import { Session as SessionMessage } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { encodePageToken } from "../../src/core/page-token.js";
import type { Store, StoreLimits } from "../../src/core/store.js";
import { packageVersion } from "../../src/version.js";
import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { rawError, wireDetails, type RawRegistry } from "../helpers/raw.js";

type Session = Awaited<ReturnType<SessionRegistryClient["register"]>>;

const DEFAULT_MAX_SESSIONS = 10;
const LIMITS: StoreLimits = { defaultMaxSessions: DEFAULT_MAX_SESSIONS, maxTables: 1000, watchHistory: 10_000 };

/** Byte order of two strings, as ListTables promises. */
function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8"));
}

function ids(sessions: readonly Session[]): string[] {
  return sessions.map((s) => s.id);
}

export function registryConformance(storeName: string, makeStore: (limits: StoreLimits) => Store | Promise<Store>): void {
  describe(`registry contract (${storeName} store)`, () => {
    let d: TestDaemon;
    let client: SessionRegistryClient;
    let raw: RawRegistry;

    before(async () => {
      d = await startTestDaemon({ config: { maxSessions: LIMITS.defaultMaxSessions, maxTables: LIMITS.maxTables }, store: await makeStore(LIMITS) });
      client = d.client();
      raw = d.rawClient();
    });

    after(async () => {
      await d?.stop();
    });

    describe("server info", () => {
      it("names the daemon's version and its store, available", async () => {
        expect(await client.serverInfo()).to.deep.equal({ version: packageVersion(), store: storeName, storeAvailable: true });
      });
    });

    /** A fresh, empty table for one test. */
    async function newTable(maxSessions = DEFAULT_MAX_SESSIONS): Promise<string> {
      const table = uniqueName();
      const res = await client.createTable({ table, maxSessions });
      expect(res.created).to.equal(true);
      return table;
    }

    /** Registers `n` sessions s1..sn at /p/s1../p/sn, one after another (so creation order is s1 first). */
    async function fill(table: string, n: number, prefix = "s"): Promise<Session[]> {
      const out: Session[] = [];
      for (let i = 1; i <= n; i++) {
        out.push(await client.register({ id: `${prefix}${i}`, projectPath: `/p/${prefix}${i}` }, { table }));
      }
      return out;
    }

    /** A dedicated daemon with a store of its own, for tests that change daemon-wide state. */
    async function withOwnDaemon(limits: StoreLimits, body: (c: SessionRegistryClient, own: TestDaemon) => Promise<void>): Promise<void> {
      const own = await startTestDaemon({
        config: { maxSessions: limits.defaultMaxSessions, maxTables: limits.maxTables },
        store: await makeStore(limits),
      });
      try {
        await body(own.client(), own);
      } finally {
        await own.stop();
      }
    }

    describe("tables", () => {
      it("has a table named default with the daemon's session limit right after start-up", async () => {
        const table = await client.getTable();
        expect(table.name).to.equal("default");
        expect(table.maxSessions).to.equal(DEFAULT_MAX_SESSIONS);
        const byName = await client.getTable("default");
        expect(byName.name).to.equal("default");
      });

      it("creates a table with the given limit, an empty count and a create time", async () => {
        const name = uniqueName();
        const { table, created } = await client.createTable({ table: name, maxSessions: 3 });
        expect(created).to.equal(true);
        expect(table.name).to.equal(name);
        expect(table.maxSessions).to.equal(3);
        expect(table.sessionCount).to.equal(0);
        expect(table.createTime).to.be.instanceOf(Date);
        const got = await client.getTable(name);
        expect(got.maxSessions).to.equal(3);
        expect(got.sessionCount).to.equal(0);
        expect(got.createTime).to.deep.equal(table.createTime);
      });

      it("gives a table created with max_sessions 0 the daemon's default limit", async () => {
        const name = uniqueName();
        const { table } = await client.createTable({ table: name });
        expect(table.maxSessions).to.equal(DEFAULT_MAX_SESSIONS);
      });

      it("returns the existing table with created=false when it is created again with the same limit", async () => {
        const name = uniqueName();
        const first = await client.createTable({ table: name, maxSessions: 4 });
        await client.register({ projectPath: "/x" }, { table: name });
        const again = await client.createTable({ table: name, maxSessions: 4 });
        expect(again.created).to.equal(false);
        expect(again.table.name).to.equal(name);
        expect(again.table.maxSessions).to.equal(4);
        expect(again.table.sessionCount).to.equal(1);
        expect(again.table.createTime).to.deep.equal(first.table.createTime);
      });

      it("returns the existing table with created=false when it is created again with max_sessions 0", async () => {
        const name = uniqueName();
        await client.createTable({ table: name, maxSessions: 4 });
        const again = await client.createTable({ table: name, maxSessions: 0 });
        expect(again.created).to.equal(false);
        expect(again.table.maxSessions).to.equal(4);
      });

      it("refuses to create an existing table with a different limit with TABLE_EXISTS", async () => {
        const name = uniqueName();
        await client.createTable({ table: name, maxSessions: 4 });
        const err = await expectError(client.createTable({ table: name, maxSessions: 5 }), TableExistsError);
        expect(err.code).to.equal(status.ALREADY_EXISTS);
        expect(err.reason).to.equal("TABLE_EXISTS");
        expect(err.metadata).to.include({ table: name, max_sessions: "4" });
        expect((await client.getTable(name)).maxSessions).to.equal(4);
      });

      it("lists every table in byte order of name (uppercase before lowercase)", async () => {
        const suffix = uniqueName("x");
        const names = [`z${suffix}`, `a${suffix}`, `B${suffix}`, `a.${suffix}`, `a-${suffix}`, `0${suffix}`, `A${suffix}`];
        for (const name of names) await client.createTable({ table: name });
        const listed = (await client.listTables()).map((t) => t.name);
        expect(listed).to.include.members([...names, "default"]);
        const sorted = [...listed].sort(byteCompare);
        expect(listed).to.deep.equal(sorted);
        const ours = listed.filter((n) => names.includes(n));
        expect(ours).to.deep.equal([`0${suffix}`, `A${suffix}`, `B${suffix}`, `a-${suffix}`, `a.${suffix}`, `a${suffix}`, `z${suffix}`]);
      });

      it("reports each listed table with its limit and session count", async () => {
        const name = await newTable(7);
        await fill(name, 2);
        const listed = (await client.listTables()).find((t) => t.name === name);
        expect(listed).to.not.equal(undefined);
        expect(listed!.maxSessions).to.equal(7);
        expect(listed!.sessionCount).to.equal(2);
      });

      it("reports an unknown table as TABLE_NOT_FOUND", async () => {
        const name = uniqueName("missing");
        const err = await expectError(client.getTable(name), TableNotFoundError);
        expect(err.code).to.equal(status.NOT_FOUND);
        expect(err.reason).to.equal("TABLE_NOT_FOUND");
        expect(err.metadata).to.include({ table: name });
      });

      it("refuses every session call on an unknown table with TABLE_NOT_FOUND", async () => {
        const table = uniqueName("missing");
        await expectError(client.register({ projectPath: "/x" }, { table }), TableNotFoundError);
        await expectError(client.lookup({ id: "x" }, { table }), TableNotFoundError);
        await expectError(client.listPage({ table }), TableNotFoundError);
        await expectError(client.update({ table, id: "x", name: "n" }), TableNotFoundError);
        await expectError(client.remove("x", { table }), TableNotFoundError);
        await expectError(client.remove("x", { table, allowMissing: true }), TableNotFoundError);
      });

      it("refuses to delete an unknown table with TABLE_NOT_FOUND", async () => {
        await expectError(client.deleteTable(uniqueName("missing")), TableNotFoundError);
      });

      it("deletes an empty table, after which it is not found", async () => {
        const name = await newTable();
        await client.deleteTable(name);
        await expectError(client.getTable(name), TableNotFoundError);
        expect((await client.listTables()).map((t) => t.name)).to.not.include(name);
      });

      it("refuses to delete a table that holds sessions with TABLE_NOT_EMPTY and keeps its sessions", async () => {
        const name = await newTable();
        const [s1] = await fill(name, 2);
        const err = await expectError(client.deleteTable(name), TableNotEmptyError);
        expect(err.code).to.equal(status.FAILED_PRECONDITION);
        expect(err.reason).to.equal("TABLE_NOT_EMPTY");
        expect(err.metadata).to.include({ table: name, session_count: "2" });
        expect((await client.getTable(name)).sessionCount).to.equal(2);
        expect(await client.lookup({ id: s1!.id }, { table: name })).to.deep.equal(s1);
      });

      it("deletes a table that holds sessions when forced, and a re-created table starts empty", async () => {
        const name = await newTable();
        await fill(name, 3);
        await client.deleteTable(name, { force: true });
        await expectError(client.getTable(name), TableNotFoundError);
        await expectError(client.lookup({ id: "s1" }, { table: name }), TableNotFoundError);
        const { table, created } = await client.createTable({ table: name, maxSessions: 2 });
        expect(created).to.equal(true);
        expect(table.sessionCount).to.equal(0);
        expect(table.maxSessions).to.equal(2);
        await expectError(client.lookup({ id: "s1" }, { table: name }), SessionNotFoundError);
        await expectError(client.lookup({ projectPath: "/p/s1" }, { table: name }), SessionNotFoundError);
        await client.register({ id: "s1", projectPath: "/p/s1" }, { table: name });
      });

      it("lets the default table be deleted and created again", async () => {
        await withOwnDaemon(LIMITS, async (c) => {
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
        const table = await newTable();
        expect((await client.getTable(table)).sessionCount).to.equal(0);
        for (let i = 1; i <= 3; i++) {
          await client.register({ projectPath: `/count/${i}` }, { table });
          expect((await client.getTable(table)).sessionCount).to.equal(i);
        }
      });

      it("bumps the table revision on every write and stamps the written session with it", async () => {
        const table = await newTable();
        let last = (await client.getTable(table)).revision;
        const expectBumped = async (session: Session | undefined): Promise<void> => {
          const now = (await client.getTable(table)).revision;
          expect(now).to.be.greaterThan(last);
          if (session !== undefined) expect(session.revision).to.equal(now);
          last = now;
        };
        const a = await client.register({ id: "a", projectPath: "/rev/a" }, { table });
        await expectBumped(a);
        const b = await client.register({ id: "b", projectPath: "/rev/b" }, { table });
        await expectBumped(b);
        expect(b.revision).to.be.greaterThan(a.revision);
        const a2 = await client.update({ table, id: "a", name: "renamed" });
        await expectBumped(a2);
        const a3 = await client.update({ table, id: "a", metadata: { k: "v" } });
        await expectBumped(a3);
        const removed = await client.remove("b", { table });
        expect(removed!.revision).to.equal(b.revision);
        await expectBumped(undefined);
      });

      it("leaves the table revision unchanged on reads and on rejected writes", async () => {
        const table = await newTable(2);
        await fill(table, 2);
        const before = (await client.getTable(table)).revision;
        await client.lookup({ id: "s1" }, { table });
        await client.lookup({ name: "s1" }, { table });
        await client.listPage({ table });
        await client.listTables();
        await expectError(client.register({ projectPath: "/p/s3" }, { table }), SessionLimitReachedError);
        await expectError(client.update({ table, id: "s1", projectPath: "/p/s2" }), ProjectAlreadyOpenError);
        await expectError(client.update({ table, id: "nope", name: "x" }), SessionNotFoundError);
        await expectError(client.remove("nope", { table }), SessionNotFoundError);
        await client.remove("nope", { table, allowMissing: true });
        expect((await client.getTable(table)).revision).to.equal(before);
      });

      it("keeps the revisions of two tables apart", async () => {
        const t1 = await newTable();
        const t2 = await newTable();
        await fill(t1, 1);
        const r2 = (await client.getTable(t2)).revision;
        await fill(t1, 2, "more");
        expect((await client.getTable(t2)).revision).to.equal(r2);
      });
    });

    describe("register", () => {
      it("returns the session as stored, with every field filled in", async () => {
        const table = await newTable();
        const before = Date.now();
        const s = await client.register(
          { id: "sess-1", name: "My Project", projectPath: "/home/u//proj/./x/", metadata: { tool: "editor", pid: "42" } },
          { table },
        );
        const after = Date.now();
        expect(s.id).to.equal("sess-1");
        expect(s.name).to.equal("My Project");
        expect(s.projectPath).to.equal("/home/u/proj/x");
        expect(s.metadata).to.deep.equal(new Map([["tool", "editor"], ["pid", "42"]]));
        expect(s.createTime).to.be.instanceOf(Date);
        expect(s.createTime!.getTime()).to.be.within(before, after);
        expect(s.updateTime).to.deep.equal(s.createTime);
        expect(s.revision).to.be.greaterThan(0);
        expect(s.revision).to.equal((await client.getTable(table)).revision);
        expect(s.ttl).to.equal(undefined);
        expect(s.expireTime).to.equal(undefined);
      });

      it("stores exactly what it returned: lookup and list give the same session", async () => {
        const table = await newTable();
        const s = await client.register({ id: "same", projectPath: "/same", metadata: new Map([["a", "b"]]) }, { table });
        expect(await client.lookup({ id: "same" }, { table })).to.deep.equal(s);
        expect((await client.listPage({ table })).sessions).to.deep.equal([s]);
      });

      it("makes a UUIDv4 id when none is given, a different one each time", async () => {
        const table = await newTable();
        const a = await client.register({ projectPath: "/uuid/a" }, { table });
        const b = await client.register({ projectPath: "/uuid/b", id: "" }, { table });
        const uuidV4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
        expect(a.id).to.match(uuidV4);
        expect(b.id).to.match(uuidV4);
        expect(a.id).to.not.equal(b.id);
      });

      it("names a session without a name after the last segment of its path", async () => {
        const table = await newTable();
        const s = await client.register({ projectPath: "/home/u/my-repo/" }, { table });
        expect(s.name).to.equal("my-repo");
      });

      it("refuses a duplicate id with SESSION_EXISTS and keeps the first session", async () => {
        const table = await newTable();
        const first = await client.register({ id: "dup", projectPath: "/one" }, { table });
        const err = await expectError(client.register({ id: "dup", projectPath: "/two" }, { table }), SessionExistsError);
        expect(err.code).to.equal(status.ALREADY_EXISTS);
        expect(err.reason).to.equal("SESSION_EXISTS");
        expect(err.sessionId).to.equal("dup");
        expect(err.metadata).to.include({ table, session_id: "dup" });
        expect(await client.lookup({ id: "dup" }, { table })).to.deep.equal(first);
        expect((await client.getTable(table)).sessionCount).to.equal(1);
        await expectError(client.lookup({ projectPath: "/two" }, { table }), SessionNotFoundError);
      });

      it("refuses a project path that is already open with PROJECT_ALREADY_OPEN naming the holder", async () => {
        const table = await newTable();
        await client.register({ id: "holder", projectPath: "/proj" }, { table });
        const err = await expectError(client.register({ id: "other", projectPath: "/proj" }, { table }), ProjectAlreadyOpenError);
        expect(err.code).to.equal(status.ALREADY_EXISTS);
        expect(err.reason).to.equal("PROJECT_ALREADY_OPEN");
        expect(err.sessionId).to.equal("holder");
        expect(err.projectPath).to.equal("/proj");
        expect(err.metadata).to.include({ table, session_id: "holder", project_path: "/proj" });
        await expectError(client.lookup({ id: "other" }, { table }), SessionNotFoundError);
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("treats a path spelled differently but normalizing to an open one as already open", async () => {
        const table = await newTable();
        await client.register({ id: "holder", projectPath: "/a/b/c" }, { table });
        for (const spelling of ["/a/b/c/", "/a//b/c", "/a/./b/c", "//a/b/c//"]) {
          const err = await expectError(client.register({ projectPath: spelling }, { table }), ProjectAlreadyOpenError);
          expect(err.sessionId).to.equal("holder");
        }
      });

      it("allows exactly the table's limit of sessions and refuses the next with SESSION_LIMIT_REACHED", async () => {
        const table = await newTable(10);
        await fill(table, 10);
        expect((await client.getTable(table)).sessionCount).to.equal(10);
        const err = await expectError(client.register({ id: "s11", projectPath: "/p/s11" }, { table }), SessionLimitReachedError);
        expect(err.code).to.equal(status.RESOURCE_EXHAUSTED);
        expect(err.reason).to.equal("SESSION_LIMIT_REACHED");
        expect(err.current).to.equal(10);
        expect(err.max).to.equal(10);
        expect(err.metadata).to.include({ table, current: "10", max: "10" });
        expect((await client.getTable(table)).sessionCount).to.equal(10);
        await expectError(client.lookup({ id: "s11" }, { table }), SessionNotFoundError);
      });

      it("enforces each table's own limit", async () => {
        const one = await newTable(1);
        await client.register({ projectPath: "/only" }, { table: one });
        const err = await expectError(client.register({ projectPath: "/second" }, { table: one }), SessionLimitReachedError);
        expect(err.current).to.equal(1);
        expect(err.max).to.equal(1);
      });

      it("allows one name for several sessions", async () => {
        const table = await newTable();
        await client.register({ id: "n1", name: "same", projectPath: "/n/1" }, { table });
        await client.register({ id: "n2", name: "same", projectPath: "/n/2" }, { table });
        await client.register({ id: "n3", name: "same", projectPath: "/n/3" }, { table });
        expect((await client.getTable(table)).sessionCount).to.equal(3);
      });

      it("keeps tables apart: one id and one path may be registered in two tables", async () => {
        const t1 = await newTable();
        const t2 = await newTable();
        await client.register({ id: "x", projectPath: "/shared" }, { table: t1 });
        await client.register({ id: "x", projectPath: "/shared" }, { table: t2 });
        expect((await client.lookup({ id: "x" }, { table: t1 })).projectPath).to.equal("/shared");
        expect((await client.lookup({ id: "x" }, { table: t2 })).projectPath).to.equal("/shared");
        await client.remove("x", { table: t1 });
        expect((await client.getTable(t2)).sessionCount).to.equal(1);
      });

      it("ignores the output-only fields a client sends and stores server values", async () => {
        const table = await newTable();
        const before = Date.now();
        const res = await raw.register({
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
        expect(s.revision).to.equal((await client.getTable(table)).revision);
        expect(s.revision).to.not.equal(987654);
        expect(s.expireTime).to.equal(undefined);
        expect(s.ttl).to.equal(undefined);
        expect(await client.lookup({ id: "out-only" }, { table })).to.deep.equal(s);
      });

      it("registers into the default table when the request's table field is empty", async () => {
        const id = uniqueName("in-default");
        const before = (await client.getTable("default")).sessionCount;
        try {
          const res = await raw.register({ requestId: "", table: "", session: SessionMessage.fromPartial({ id, projectPath: `/default/${id}` }) });
          expect(res.session!.id).to.equal(id);
          expect((await client.lookup({ id }, { table: "default" })).id).to.equal(id);
          expect((await client.getTable("default")).sessionCount).to.equal(before + 1);
          const found = await raw.lookup({ table: "", key: { $case: "id", value: id } });
          expect(found.session!.id).to.equal(id);
        } finally {
          await client.remove(id, { table: "default", allowMissing: true });
        }
      });
    });

    describe("the order of register's checks", () => {
      it("reports the limit before a duplicate id on a full table", async () => {
        const table = await newTable(2);
        await fill(table, 2);
        const err = await expectError(client.register({ id: "s1", projectPath: "/fresh" }, { table }), SessionLimitReachedError);
        expect(err.reason).to.equal("SESSION_LIMIT_REACHED");
      });

      it("reports the limit before a duplicate path on a full table", async () => {
        const table = await newTable(2);
        await fill(table, 2);
        await expectError(client.register({ id: "fresh", projectPath: "/p/s1" }, { table }), SessionLimitReachedError);
      });

      it("reports a duplicate id before a duplicate path", async () => {
        const table = await newTable();
        await fill(table, 2);
        // id of s1, path of s2: both clash, with different sessions.
        const err = await expectError(client.register({ id: "s1", projectPath: "/p/s2" }, { table }), SessionExistsError);
        expect(err.reason).to.equal("SESSION_EXISTS");
        expect(err.sessionId).to.equal("s1");
      });

      it("reports invalid input before an unknown table", async () => {
        const table = uniqueName("missing");
        const err = await expectError(client.register({ projectPath: "relative/path" }, { table }), InvalidArgumentError);
        expect(err.fieldViolations.map((v) => v.field)).to.include("session.project_path");
      });

      it("reports an unknown table before anything that depends on a table's state", async () => {
        const table = await newTable(1);
        await fill(table, 1);
        await client.deleteTable(table, { force: true });
        await expectError(client.register({ id: "s1", projectPath: "/p/s1" }, { table }), TableNotFoundError);
      });
    });

    describe("writes with a request_id (safe retries)", () => {
      it("returns the first result to a repeated request_id and registers nothing more", async () => {
        const table = await newTable();
        const first = await client.register({ id: "r1", projectPath: "/req/one", requestId: "req-1" }, { table });
        const revision = (await client.getTable(table)).revision;
        const again = await client.register({ id: "r1", projectPath: "/req/one", requestId: "req-1" }, { table });
        expect(again).to.deep.equal(first);
        const t = await client.getTable(table);
        expect(t.sessionCount).to.equal(1);
        expect(t.revision, "a repeat writes nothing").to.equal(revision);
      });

      it("returns the same server-made id to a repeat of a Register without id", async () => {
        const table = await newTable();
        const first = await client.register({ projectPath: "/req/auto", requestId: "auto:1" }, { table });
        const again = await client.register({ projectPath: "/req/auto", requestId: "auto:1" }, { table });
        expect(again.id).to.equal(first.id);
        expect(again.revision).to.equal(first.revision);
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("returns the session as first registered even after it was updated or removed", async () => {
        const table = await newTable();
        const first = await client.register({ id: "r1", projectPath: "/req/upd", requestId: "req.upd" }, { table });
        await client.update({ id: "r1", table, name: "renamed" });
        expect(await client.register({ id: "r1", projectPath: "/req/upd", requestId: "req.upd" }, { table })).to.deep.equal(first);
        await client.remove("r1", { table });
        expect(await client.register({ id: "r1", projectPath: "/req/upd", requestId: "req.upd" }, { table })).to.deep.equal(first);
        expect((await client.getTable(table)).sessionCount, "the repeat does not register it again").to.equal(0);
      });

      it("answers a repeat before the limit: a full table still returns the first result", async () => {
        const table = await newTable(1);
        const first = await client.register({ id: "r1", projectPath: "/req/full", requestId: "req-full" }, { table });
        expect(await client.register({ id: "r1", projectPath: "/req/full", requestId: "req-full" }, { table })).to.deep.equal(first);
      });

      it("checks another request_id as usual: PROJECT_ALREADY_OPEN, SESSION_EXISTS", async () => {
        const table = await newTable();
        await client.register({ id: "r1", projectPath: "/req/dup", requestId: "req-a" }, { table });
        const open = await expectError(
          client.register({ id: "r2", projectPath: "/req/dup", requestId: "req-b" }, { table }),
          ProjectAlreadyOpenError,
        );
        expect(open.metadata).to.include({ session_id: "r1" });
        await expectError(client.register({ id: "r1", projectPath: "/req/other", requestId: "req-c" }, { table }), SessionExistsError);
        await expectError(client.register({ id: "r1", projectPath: "/req/dup" }, { table }), SessionExistsError);
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("keeps request_ids per table", async () => {
        const a = await newTable();
        const b = await newTable();
        const inA = await client.register({ id: "r1", projectPath: "/req/t", requestId: "shared" }, { table: a });
        const inB = await client.register({ id: "r1", projectPath: "/req/t", requestId: "shared" }, { table: b });
        expect(inB.revision).to.not.equal(inA.revision);
        expect((await client.getTable(b)).sessionCount).to.equal(1);
      });

      it("remembers nothing of a failed Register: retried once it can succeed, it registers", async () => {
        const table = await newTable(1);
        await client.register({ id: "r1", projectPath: "/req/first" }, { table });
        await expectError(client.register({ id: "r2", projectPath: "/req/second", requestId: "late" }, { table }), SessionLimitReachedError);
        await client.remove("r1", { table });
        const s = await client.register({ id: "r2", projectPath: "/req/second", requestId: "late" }, { table });
        expect(s.id).to.equal("r2");
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("registers exactly once among concurrent attempts with one request_id", async () => {
        const table = await newTable();
        const results = await Promise.all(
          Array.from({ length: 8 }, () => client.register({ projectPath: "/req/race", requestId: "race" }, { table })),
        );
        expect(new Set(results.map((r) => r.id)).size).to.equal(1);
        expect(new Set(results.map((r) => r.revision)).size).to.equal(1);
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("refuses a malformed request_id with INVALID_ARGUMENT on request_id", async () => {
        const table = await newTable();
        for (const requestId of ["x".repeat(129), "has space", "a/b", "ünï"]) {
          const err = await expectError(client.register({ projectPath: "/req/bad", requestId }, { table }), InvalidArgumentError);
          expect(err.fieldViolations.map((v) => v.field)).to.deep.equal(["request_id"]);
        }
        await client.register({ projectPath: "/req/bad", requestId: "x".repeat(128) }, { table });
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("returns the first result to a repeated Update, without REVISION_MISMATCH or a second write", async () => {
        const table = await newTable();
        const s = await client.register({ id: "u1", projectPath: "/req/u1" }, { table });
        const first = await client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-1" });
        const revision = (await client.getTable(table)).revision;
        const again = await client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-1" });
        expect(again).to.deep.equal(first);
        expect((await client.getTable(table)).revision, "a repeat writes nothing").to.equal(revision);
        await expectError(client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-2" }), RevisionMismatchError);
        await client.remove("u1", { table });
        expect(await client.update({ id: "u1", table, name: "one", expectedRevision: s.revision, requestId: "up-1" })).to.deep.equal(first);
      });

      it("returns the removed session to a repeated Remove instead of SESSION_NOT_FOUND", async () => {
        const table = await newTable();
        const s = await client.register({ id: "d1", projectPath: "/req/d1", ttlMs: 60_000 }, { table });
        const first = await client.remove("d1", { table, expectedRevision: s.revision, requestId: "rm-1" });
        expect(first).to.deep.equal(s);
        const revision = (await client.getTable(table)).revision;
        expect(await client.remove("d1", { table, expectedRevision: s.revision, requestId: "rm-1" })).to.deep.equal(first);
        expect((await client.getTable(table)).revision).to.equal(revision);
        await expectError(client.remove("d1", { table, requestId: "rm-2" }), SessionNotFoundError);
      });

      it("keeps request_ids per method: one key on a Register, an Update and a Remove", async () => {
        const table = await newTable();
        const s = await client.register({ id: "m1", projectPath: "/req/m1", requestId: "same" }, { table });
        const u = await client.update({ id: "m1", table, name: "renamed", requestId: "same" });
        expect(u.name).to.equal("renamed");
        expect(u.revision).to.be.greaterThan(s.revision);
        const d = await client.remove("m1", { table, requestId: "same" });
        expect(d?.revision).to.equal(u.revision);
        expect((await client.getTable(table)).sessionCount).to.equal(0);
      });

      it("refuses a malformed request_id on Update and Remove with INVALID_ARGUMENT on request_id", async () => {
        const table = await newTable();
        await client.register({ id: "v1", projectPath: "/req/v1" }, { table });
        const u = await expectError(client.update({ id: "v1", table, name: "n", requestId: "bad id" }), InvalidArgumentError);
        expect(u.fieldViolations.map((v) => v.field)).to.deep.equal(["request_id"]);
        const d = await expectError(client.remove("v1", { table, requestId: "x".repeat(129) }), InvalidArgumentError);
        expect(d.fieldViolations.map((v) => v.field)).to.deep.equal(["request_id"]);
        expect((await client.lookup({ id: "v1" }, { table })).name).to.equal("v1");
      });
    });

    describe("lookup", () => {
      it("finds a session by id, by project path and by name", async () => {
        const table = await newTable();
        const s = await client.register({ id: "find-me", name: "Finder", projectPath: "/find/me" }, { table });
        expect(await client.lookup({ id: "find-me" }, { table })).to.deep.equal(s);
        expect(await client.lookup({ projectPath: "/find/me" }, { table })).to.deep.equal(s);
        expect(await client.lookup({ name: "Finder" }, { table })).to.deep.equal(s);
      });

      it("finds nothing in an empty table, by any key", async () => {
        const table = await newTable();
        const byId = await expectError(client.lookup({ id: "x" }, { table }), SessionNotFoundError);
        expect(byId.code).to.equal(status.NOT_FOUND);
        expect(byId.reason).to.equal("SESSION_NOT_FOUND");
        expect(byId.metadata).to.include({ table, session_id: "x" });
        const byPath = await expectError(client.lookup({ projectPath: "/x" }, { table }), SessionNotFoundError);
        expect(byPath.metadata).to.include({ table });
        const byName = await expectError(client.lookup({ name: "x" }, { table }), SessionNotFoundError);
        expect(byName.metadata).to.include({ table });
      });

      it("finds nothing for an unknown key in a full table", async () => {
        const table = await newTable();
        await fill(table, 10);
        await expectError(client.lookup({ id: "s11" }, { table }), SessionNotFoundError);
        await expectError(client.lookup({ projectPath: "/p/s11" }, { table }), SessionNotFoundError);
        await expectError(client.lookup({ name: "s11" }, { table }), SessionNotFoundError);
      });

      it("finds the right session among several", async () => {
        const table = await newTable();
        const all = await fill(table, 6);
        for (const s of all) {
          expect(await client.lookup({ id: s.id }, { table })).to.deep.equal(s);
          expect(await client.lookup({ projectPath: s.projectPath }, { table })).to.deep.equal(s);
          expect(await client.lookup({ name: s.name }, { table })).to.deep.equal(s);
        }
      });

      it("normalizes the path it looks up: a trailing slash, doubled slashes and . segments still match", async () => {
        const table = await newTable();
        const s = await client.register({ projectPath: "/srv/a/b/c" }, { table });
        for (const spelling of ["/srv/a/b/c/", "/srv//a/b/c", "/srv/./a/b/c", "//srv/a/b/c/./"]) {
          expect(await client.lookup({ projectPath: spelling }, { table })).to.deep.equal(s);
        }
      });

      it("matches a path exactly: no prefix, no subdirectory, no other case, no trailing space", async () => {
        const table = await newTable();
        await client.register({ projectPath: "/srv/a/b/c" }, { table });
        for (const other of ["/srv/a/b", "/srv/a/b/c/d", "/SRV/a/b/c", "/srv/a/b/C", "/srv/a/b/c ", "/srv/a/b/c2"]) {
          await expectError(client.lookup({ projectPath: other }, { table }), SessionNotFoundError);
        }
      });

      it("matches a name exactly: no prefix, no other case, no trailing or leading space", async () => {
        const table = await newTable();
        await client.register({ name: "Alpha", projectPath: "/alpha" }, { table });
        for (const other of ["Alph", "alpha", "ALPHA", "Alpha ", " Alpha", "Alpha2"]) {
          await expectError(client.lookup({ name: other }, { table }), SessionNotFoundError);
        }
        expect((await client.lookup({ name: "Alpha" }, { table })).projectPath).to.equal("/alpha");
      });

      it("returns the oldest session with a name, and the next oldest once it is removed", async () => {
        const table = await newTable();
        const a = await client.register({ id: "A", name: "shared", projectPath: "/A" }, { table });
        const b = await client.register({ id: "B", name: "shared", projectPath: "/B" }, { table });
        await client.register({ id: "C", name: "shared", projectPath: "/C" }, { table });
        expect(await client.lookup({ name: "shared" }, { table })).to.deep.equal(a);
        await client.remove("A", { table });
        expect(await client.lookup({ name: "shared" }, { table })).to.deep.equal(b);
        await client.remove("B", { table });
        expect((await client.lookup({ name: "shared" }, { table })).id).to.equal("C");
      });

      it("orders sessions by creation, not by rename, when an old session takes a name", async () => {
        const table = await newTable();
        await client.register({ id: "C", name: "other", projectPath: "/C" }, { table });
        await client.register({ id: "B", name: "shared", projectPath: "/B" }, { table });
        await client.register({ id: "D", name: "other", projectPath: "/D" }, { table });
        expect((await client.lookup({ name: "shared" }, { table })).id).to.equal("B");
        // C is older than B: once renamed, it wins.
        await client.update({ table, id: "C", name: "shared" });
        expect((await client.lookup({ name: "shared" }, { table })).id).to.equal("C");
        // D is newer than B: renaming it changes nothing.
        await client.update({ table, id: "D", name: "shared" });
        expect((await client.lookup({ name: "shared" }, { table })).id).to.equal("C");
        // C renamed away: B, the oldest left, wins again.
        await client.update({ table, id: "C", name: "elsewhere" });
        expect((await client.lookup({ name: "shared" }, { table })).id).to.equal("B");
      });

      it("no longer finds a renamed session by its old name", async () => {
        const table = await newTable();
        await client.register({ id: "r", name: "before", projectPath: "/r" }, { table });
        await client.update({ table, id: "r", name: "after" });
        await expectError(client.lookup({ name: "before" }, { table }), SessionNotFoundError);
        expect((await client.lookup({ name: "after" }, { table })).id).to.equal("r");
      });
    });

    describe("list", () => {
      it("lists an empty table as no sessions, no next page and a total of 0", async () => {
        const table = await newTable();
        const page = await client.listPage({ table });
        expect(page.sessions).to.deep.equal([]);
        expect(page.nextPageToken).to.equal("");
        expect(page.totalSize).to.equal(0);
      });

      it("lists every session, oldest first, exactly as register returned them", async () => {
        const table = await newTable();
        const registered = await fill(table, 5);
        const page = await client.listPage({ table });
        expect(page.sessions).to.deep.equal(registered);
        expect(page.nextPageToken).to.equal("");
        expect(page.totalSize).to.equal(5);
      });

      it("lists updated sessions as stored now, in their original creation order", async () => {
        const table = await newTable();
        const [s1, s2, s3] = await fill(table, 3);
        const s1b = await client.update({ table, id: s1!.id, name: "renamed", metadata: { k: "v" } });
        expect(s1b.revision).to.be.greaterThan(s1!.revision);
        const page = await client.listPage({ table });
        expect(page.sessions).to.deep.equal([s1b, s2, s3]);
      });

      it("reports the table revision the page was read at", async () => {
        const table = await newTable();
        await fill(table, 3);
        const tableRevision = (await client.getTable(table)).revision;
        const page = await client.listPage({ table });
        expect(page.revision).to.equal(tableRevision);
        await client.remove("s2", { table });
        const page2 = await client.listPage({ table });
        expect(page2.revision).to.equal((await client.getTable(table)).revision);
        expect(page2.revision).to.be.greaterThan(page.revision);
      });

      it("pages through five sessions two at a time in three pages", async () => {
        const table = await newTable();
        const all = await fill(table, 5);
        const p1 = await client.listPage({ table, pageSize: 2 });
        expect(ids(p1.sessions)).to.deep.equal(["s1", "s2"]);
        expect(p1.nextPageToken).to.not.equal("");
        expect(p1.totalSize).to.equal(5);
        const p2 = await client.listPage({ table, pageSize: 2, pageToken: p1.nextPageToken });
        expect(ids(p2.sessions)).to.deep.equal(["s3", "s4"]);
        expect(p2.nextPageToken).to.not.equal("");
        expect(p2.totalSize).to.equal(5);
        const p3 = await client.listPage({ table, pageSize: 2, pageToken: p2.nextPageToken });
        expect(ids(p3.sessions)).to.deep.equal(["s5"]);
        expect(p3.nextPageToken).to.equal("");
        expect([...p1.sessions, ...p2.sessions, ...p3.sessions]).to.deep.equal(all);
      });

      it("neither skips nor repeats a session when one on an earlier page is removed between pages", async () => {
        const table = await newTable();
        await fill(table, 5);
        const p1 = await client.listPage({ table, pageSize: 2 });
        await client.remove("s1", { table });
        const p2 = await client.listPage({ table, pageSize: 2, pageToken: p1.nextPageToken });
        expect(ids(p2.sessions)).to.deep.equal(["s3", "s4"]);
        expect(p2.totalSize).to.equal(4);
        const p3 = await client.listPage({ table, pageSize: 2, pageToken: p2.nextPageToken });
        expect(ids(p3.sessions)).to.deep.equal(["s5"]);
        expect(p3.nextPageToken).to.equal("");
      });

      it("neither skips nor repeats a session when the last one of the previous page is removed between pages", async () => {
        const table = await newTable();
        await fill(table, 5);
        const p1 = await client.listPage({ table, pageSize: 2 });
        await client.remove("s2", { table });
        const p2 = await client.listPage({ table, pageSize: 2, pageToken: p1.nextPageToken });
        expect(ids(p2.sessions)).to.deep.equal(["s3", "s4"]);
        const p3 = await client.listPage({ table, pageSize: 2, pageToken: p2.nextPageToken });
        expect(ids(p3.sessions)).to.deep.equal(["s5"]);
      });

      it("shows a session registered between pages on a later page", async () => {
        const table = await newTable();
        await fill(table, 4);
        const p1 = await client.listPage({ table, pageSize: 2 });
        await client.register({ id: "late", projectPath: "/late" }, { table });
        const rest: string[] = [];
        let token = p1.nextPageToken;
        while (token !== "") {
          const page = await client.listPage({ table, pageSize: 2, pageToken: token });
          rest.push(...ids(page.sessions));
          token = page.nextPageToken;
        }
        expect(rest).to.deep.equal(["s3", "s4", "late"]);
      });

      it("refuses a page token whose cursor no store made, naming page_token", async () => {
        const table = await newTable();
        await fill(table, 3);
        const { tableUid } = await client.listPage({ table, pageSize: 2 });
        for (const cursor of ["x", "-1", "1.5", "99999999999999999999"]) {
          const forged = encodePageToken(table, tableUid, cursor);
          const err = await expectError(client.listPage({ table, pageSize: 2, pageToken: forged }), InvalidArgumentError);
          expect(err.fieldViolations.map((v) => v.field), cursor).to.deep.equal(["page_token"]);
        }
      });

      it("yields every session through the async iterator, across pages", async () => {
        const table = await newTable();
        const all = await fill(table, 5);
        const seen: Session[] = [];
        for await (const s of client.list({ table, pageSize: 2 })) seen.push(s);
        expect(seen).to.deep.equal(all);
        const seenDefaultPage: Session[] = [];
        for await (const s of client.list({ table })) seenDefaultPage.push(s);
        expect(seenDefaultPage).to.deep.equal(all);
      });
    });

    describe("remove", () => {
      it("removes only that session, lowers the count and returns the session as it was", async () => {
        const table = await newTable();
        const [s1, s2, s3] = await fill(table, 3);
        const removed = await client.remove("s2", { table });
        expect(removed).to.deep.equal(s2);
        expect((await client.getTable(table)).sessionCount).to.equal(2);
        await expectError(client.lookup({ id: "s2" }, { table }), SessionNotFoundError);
        await expectError(client.lookup({ projectPath: "/p/s2" }, { table }), SessionNotFoundError);
        await expectError(client.lookup({ name: "s2" }, { table }), SessionNotFoundError);
        expect(await client.lookup({ id: "s1" }, { table })).to.deep.equal(s1);
        expect(await client.lookup({ id: "s3" }, { table })).to.deep.equal(s3);
        expect((await client.listPage({ table })).sessions).to.deep.equal([s1, s3]);
      });

      it("frees a slot: a full table takes a new session after one is removed", async () => {
        const table = await newTable(10);
        await fill(table, 10);
        await expectError(client.register({ projectPath: "/new" }, { table }), SessionLimitReachedError);
        await client.remove("s4", { table });
        await client.register({ id: "new", projectPath: "/new" }, { table });
        expect((await client.getTable(table)).sessionCount).to.equal(10);
        await expectError(client.register({ projectPath: "/newer" }, { table }), SessionLimitReachedError);
      });

      it("frees the project path and the id for a new session", async () => {
        const table = await newTable();
        const old = await client.register({ id: "reuse", projectPath: "/reuse" }, { table });
        await client.remove("reuse", { table });
        const again = await client.register({ id: "reuse", projectPath: "/reuse/" }, { table });
        expect(again.projectPath).to.equal("/reuse");
        expect(again.revision).to.be.greaterThan(old.revision);
        expect(await client.lookup({ projectPath: "/reuse" }, { table })).to.deep.equal(again);
      });

      it("reports an unknown id as SESSION_NOT_FOUND", async () => {
        const table = await newTable();
        await fill(table, 1);
        const err = await expectError(client.remove("ghost", { table }), SessionNotFoundError);
        expect(err.code).to.equal(status.NOT_FOUND);
        expect(err.metadata).to.include({ table, session_id: "ghost" });
        expect((await client.getTable(table)).sessionCount).to.equal(1);
      });

      it("returns nothing for an unknown id when allow_missing is set", async () => {
        const table = await newTable();
        await fill(table, 1);
        expect(await client.remove("ghost", { table, allowMissing: true })).to.equal(undefined);
        expect((await client.getTable(table)).sessionCount).to.equal(1);
        const s = await client.remove("s1", { table, allowMissing: true });
        expect(s?.id).to.equal("s1");
      });

      it("refuses a removal at the wrong expected revision with REVISION_MISMATCH and keeps the session", async () => {
        const table = await newTable();
        const s = await client.register({ id: "cas", projectPath: "/cas" }, { table });
        const s2 = await client.update({ table, id: "cas", name: "changed" });
        const err = await expectError(client.remove("cas", { table, expectedRevision: s.revision }), RevisionMismatchError);
        expect(err.code).to.equal(status.ABORTED);
        expect(err.reason).to.equal("REVISION_MISMATCH");
        expect(err.currentRevision).to.equal(s2.revision);
        expect(err.metadata).to.include({ table, session_id: "cas", current_revision: String(s2.revision) });
        expect(await client.lookup({ id: "cas" }, { table })).to.deep.equal(s2);
      });

      it("removes at the matching expected revision", async () => {
        const table = await newTable();
        const s = await client.register({ id: "cas", projectPath: "/cas" }, { table });
        const removed = await client.remove("cas", { table, expectedRevision: s.revision });
        expect(removed).to.deep.equal(s);
        expect((await client.getTable(table)).sessionCount).to.equal(0);
      });
    });

    describe("update", () => {
      it("changes name and path, visible through lookup by id, new path and new name", async () => {
        const table = await newTable();
        const [s1, , s3] = await fill(table, 3);
        const s2 = await client.update({ table, id: "s2", name: "New Name", projectPath: "/moved/there/" });
        expect(s2.name).to.equal("New Name");
        expect(s2.projectPath).to.equal("/moved/there");
        expect(await client.lookup({ id: "s2" }, { table })).to.deep.equal(s2);
        expect(await client.lookup({ projectPath: "/moved/there" }, { table })).to.deep.equal(s2);
        expect(await client.lookup({ name: "New Name" }, { table })).to.deep.equal(s2);
        expect(await client.lookup({ id: "s1" }, { table })).to.deep.equal(s1);
        expect(await client.lookup({ id: "s3" }, { table })).to.deep.equal(s3);
        expect((await client.getTable(table)).sessionCount).to.equal(3);
      });

      it("works right after register and changes only the fields asked for", async () => {
        const table = await newTable();
        const s = await client.register({ id: "u", name: "keep", projectPath: "/u", metadata: { a: "1" } }, { table });
        const u = await client.update({ table, id: "u", metadata: { b: "2" } });
        expect(u.id).to.equal("u");
        expect(u.name).to.equal("keep");
        expect(u.projectPath).to.equal("/u");
        expect(u.metadata).to.deep.equal(new Map([["b", "2"]]));
        expect(u.createTime).to.deep.equal(s.createTime);
        expect(u.ttl).to.equal(undefined);
      });

      it("keeps the create time, sets the update time and bumps the revision to the table's", async () => {
        const table = await newTable();
        const s = await client.register({ id: "t", projectPath: "/t" }, { table });
        const before = Date.now();
        const u = await client.update({ table, id: "t", name: "later" });
        expect(u.createTime).to.deep.equal(s.createTime);
        expect(u.updateTime!.getTime()).to.be.at.least(before);
        expect(u.updateTime!.getTime()).to.be.at.least(s.updateTime!.getTime());
        expect(u.revision).to.be.greaterThan(s.revision);
        expect(u.revision).to.equal((await client.getTable(table)).revision);
      });

      it("reports an unknown id as SESSION_NOT_FOUND", async () => {
        const table = await newTable();
        const err = await expectError(client.update({ table, id: "ghost", name: "x" }), SessionNotFoundError);
        expect(err.code).to.equal(status.NOT_FOUND);
        expect(err.metadata).to.include({ table, session_id: "ghost" });
      });

      it("refuses a project path another session holds with PROJECT_ALREADY_OPEN and changes nothing", async () => {
        const table = await newTable();
        const [s1] = await fill(table, 2);
        const err = await expectError(
          client.update({ table, id: "s1", name: "would-be", projectPath: "/p/s2/" }),
          ProjectAlreadyOpenError,
        );
        expect(err.sessionId).to.equal("s2");
        expect(err.projectPath).to.equal("/p/s2");
        expect(await client.lookup({ id: "s1" }, { table })).to.deep.equal(s1);
      });

      it("accepts a session's own project path, in any spelling", async () => {
        const table = await newTable();
        await fill(table, 1);
        const u = await client.update({ table, id: "s1", projectPath: "/p//s1/" });
        expect(u.projectPath).to.equal("/p/s1");
        expect(await client.lookup({ projectPath: "/p/s1" }, { table })).to.deep.equal(u);
      });

      it("frees the old path after a path change", async () => {
        const table = await newTable();
        await fill(table, 1);
        await client.update({ table, id: "s1", projectPath: "/p/elsewhere" });
        await expectError(client.lookup({ projectPath: "/p/s1" }, { table }), SessionNotFoundError);
        const taker = await client.register({ id: "taker", projectPath: "/p/s1" }, { table });
        expect(await client.lookup({ projectPath: "/p/s1" }, { table })).to.deep.equal(taker);
        expect((await client.lookup({ projectPath: "/p/elsewhere" }, { table })).id).to.equal("s1");
      });

      it("keeps a session's name when only its path changes", async () => {
        const table = await newTable();
        const s = await client.register({ projectPath: "/repos/one" }, { table });
        expect(s.name).to.equal("one");
        const u = await client.update({ table, id: s.id, projectPath: "/repos/two" });
        expect(u.name).to.equal("one");
      });

      it("derives the name again from the path when the mask names name and name is empty", async () => {
        const table = await newTable();
        const s = await client.register({ name: "custom", projectPath: "/repos/derived" }, { table });
        const u = await client.update({ table, id: s.id, name: "", updateMask: ["name"] });
        expect(u.name).to.equal("derived");
        const moved = await client.update({ table, id: s.id, name: "", projectPath: "/repos/again", updateMask: ["name", "project_path"] });
        expect(moved.name).to.equal("again");
      });

      it("allows renaming to a name another session has", async () => {
        const table = await newTable();
        await fill(table, 2);
        const u = await client.update({ table, id: "s2", name: "s1" });
        expect(u.name).to.equal("s1");
        expect((await client.lookup({ name: "s1" }, { table })).id).to.equal("s1");
      });

      it("replaces the metadata as a whole, and clears it with an empty map", async () => {
        const table = await newTable();
        await client.register({ id: "m", projectPath: "/m", metadata: { a: "1", b: "2" } }, { table });
        const replaced = await client.update({ table, id: "m", metadata: { c: "3" } });
        expect(replaced.metadata).to.deep.equal(new Map([["c", "3"]]));
        const cleared = await client.update({ table, id: "m", metadata: {} });
        expect(cleared.metadata.size).to.equal(0);
        expect((await client.lookup({ id: "m" }, { table })).metadata.size).to.equal(0);
      });

      it("sets a ttl with its expire time, and clears both", async () => {
        const table = await newTable();
        const s = await client.register({ id: "ttl", projectPath: "/ttl" }, { table });
        const withTtl = await client.update({ table, id: "ttl", ttlMs: 60_000 });
        expect(withTtl.ttl).to.deep.equal({ seconds: 60, nanos: 0 });
        expect(withTtl.expireTime).to.be.instanceOf(Date);
        expect(withTtl.expireTime!.getTime()).to.be.greaterThan(s.createTime!.getTime());
        expect(await client.lookup({ id: "ttl" }, { table })).to.deep.equal(withTtl);
        const cleared = await client.update({ table, id: "ttl", ttlMs: null });
        expect(cleared.ttl).to.equal(undefined);
        expect(cleared.expireTime).to.equal(undefined);
        expect(await client.lookup({ id: "ttl" }, { table })).to.deep.equal(cleared);
      });

      it("refuses an update at the wrong expected revision with REVISION_MISMATCH and changes nothing", async () => {
        const table = await newTable();
        const s = await client.register({ id: "cas", projectPath: "/cas" }, { table });
        const s2 = await client.update({ table, id: "cas", name: "second" });
        const err = await expectError(client.update({ table, id: "cas", name: "third", expectedRevision: s.revision }), RevisionMismatchError);
        expect(err.code).to.equal(status.ABORTED);
        expect(err.currentRevision).to.equal(s2.revision);
        expect(await client.lookup({ id: "cas" }, { table })).to.deep.equal(s2);
      });

      it("updates at the matching expected revision", async () => {
        const table = await newTable();
        const s = await client.register({ id: "cas", projectPath: "/cas" }, { table });
        const u = await client.update({ table, id: "cas", name: "ok", expectedRevision: s.revision });
        expect(u.name).to.equal("ok");
        expect(u.revision).to.be.greaterThan(s.revision);
      });

      it("refuses an update that names no field and sets none with INVALID_ARGUMENT", async () => {
        const table = await newTable();
        await fill(table, 1);
        const err = await expectError(client.update({ table, id: "s1" }), InvalidArgumentError);
        expect(err.fieldViolations.map((v) => v.field)).to.include("update_mask");
        const wire = await rawError(
          raw.update({ requestId: "", table, session: SessionMessage.fromPartial({ id: "s1", revision: 5 }), updateMask: [], expectedRevision: 0 }),
        );
        expect(wire.code).to.equal(status.INVALID_ARGUMENT);
      });

      it("ignores the output-only fields a client sends", async () => {
        const table = await newTable();
        const s = await client.register({ id: "oo", projectPath: "/oo" }, { table });
        const res = await raw.update({
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
        expect(u.revision).to.equal((await client.getTable(table)).revision);
        expect(u.expireTime).to.equal(undefined);
      });
    });

    describe("under concurrency", () => {
      /** Clients with a channel each, so that calls really travel side by side. */
      function channels(n: number): SessionRegistryClient[] {
        return Array.from({ length: n }, () => d.client({ channelOptions: { "grpc.use_local_subchannel_pool": 1 } }));
      }

      it("admits exactly 10 of 500 concurrent registers at a table with limit 10", async () => {
        const table = await newTable(10);
        const cs = channels(5);
        const results = await Promise.allSettled(
          Array.from({ length: 500 }, (_, i) => cs[i % cs.length]!.register({ id: `c${i}`, projectPath: `/race/${i}` }, { table })),
        );
        const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
        const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
        expect(won).to.have.length(10);
        expect(lost).to.have.length(490);
        for (const reason of lost) {
          expect(reason).to.be.instanceOf(SessionLimitReachedError);
          expect((reason as SessionLimitReachedError).max).to.equal(10);
          expect((reason as SessionLimitReachedError).current).to.equal(10);
        }
        expect((await client.getTable(table)).sessionCount).to.equal(10);
        const listed = (await client.listPage({ table })).sessions;
        expect(listed).to.have.length(10);
        expect(new Set(listed.map((s) => s.projectPath)).size).to.equal(10);
        expect(ids(listed).sort()).to.deep.equal(ids(won).sort());
      });

      it("gives one project path to exactly one of 100 concurrent registers", async () => {
        const table = await newTable(1000);
        const cs = channels(4);
        const results = await Promise.allSettled(
          Array.from({ length: 100 }, (_, i) => cs[i % cs.length]!.register({ id: `p${i}`, projectPath: "/contested" }, { table })),
        );
        const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
        expect(won).to.have.length(1);
        const winner = won[0]!.id;
        for (const r of results) {
          if (r.status === "fulfilled") continue;
          expect(r.reason).to.be.instanceOf(ProjectAlreadyOpenError);
          expect((r.reason as ProjectAlreadyOpenError).sessionId).to.equal(winner);
        }
        expect((await client.getTable(table)).sessionCount).to.equal(1);
        expect((await client.lookup({ projectPath: "/contested" }, { table })).id).to.equal(winner);
      });

      it("gives one id to exactly one of 100 concurrent registers", async () => {
        const table = await newTable(1000);
        const cs = channels(4);
        const results = await Promise.allSettled(
          Array.from({ length: 100 }, (_, i) => cs[i % cs.length]!.register({ id: "the-id", projectPath: `/same-id/${i}` }, { table })),
        );
        const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
        expect(won).to.have.length(1);
        for (const r of results) {
          if (r.status === "fulfilled") continue;
          expect(r.reason).to.be.instanceOf(SessionExistsError);
          expect((r.reason as SessionExistsError).sessionId).to.equal("the-id");
        }
        expect((await client.getTable(table)).sessionCount).to.equal(1);
        expect((await client.lookup({ id: "the-id" }, { table })).projectPath).to.equal(won[0]!.projectPath);
      });

      it("lets exactly one of many concurrent updates at one expected revision win", async () => {
        const table = await newTable();
        const s = await client.register({ id: "cas", projectPath: "/cas" }, { table });
        const cs = channels(4);
        const results = await Promise.allSettled(
          Array.from({ length: 40 }, (_, i) => cs[i % cs.length]!.update({ table, id: "cas", name: `n${i}`, expectedRevision: s.revision })),
        );
        const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
        expect(won).to.have.length(1);
        for (const r of results) {
          if (r.status === "rejected") expect(r.reason).to.be.instanceOf(RevisionMismatchError);
        }
        expect(await client.lookup({ id: "cas" }, { table })).to.deep.equal(won[0]);
      });
    });

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
        const table = await newTable();
        const { violations } = await details(
          raw.register({ requestId: "", table, session: session({ projectPath: "not/absolute" }) }),
          status.INVALID_ARGUMENT,
          "INVALID_ARGUMENT",
        );
        expect(violations.map((v) => v.field)).to.deep.equal(["session.project_path"]);
        expect(violations[0]!.description).to.not.equal("");
      });

      it("carries TABLE_NOT_FOUND with the table", async () => {
        const table = uniqueName("missing");
        const { metadata } = await details(raw.getTable({ table }), status.NOT_FOUND, "TABLE_NOT_FOUND");
        expect(Object.fromEntries(metadata)).to.deep.equal({ table });
      });

      it("carries TABLE_EXISTS with the table and its limit", async () => {
        const table = await newTable(3);
        const { metadata } = await details(raw.createTable({ table, maxSessions: 4 }), status.ALREADY_EXISTS, "TABLE_EXISTS");
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, max_sessions: "3" });
      });

      it("carries TABLE_NOT_EMPTY with the table and its session count", async () => {
        const table = await newTable();
        await fill(table, 2);
        const { metadata } = await details(raw.deleteTable({ table, force: false }), status.FAILED_PRECONDITION, "TABLE_NOT_EMPTY");
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_count: "2" });
      });

      it("carries TABLE_LIMIT_REACHED with current and max", async () => {
        await withOwnDaemon({ ...LIMITS, defaultMaxSessions: 10, maxTables: 2 }, async (c, own) => {
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
        const table = await newTable();
        const { metadata } = await details(
          raw.lookup({ table, key: { $case: "id", value: "ghost" } }),
          status.NOT_FOUND,
          "SESSION_NOT_FOUND",
        );
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "ghost" });
      });

      it("carries SESSION_EXISTS with the table and the session id", async () => {
        const table = await newTable();
        await fill(table, 1);
        const { metadata } = await details(
          raw.register({ requestId: "", table, session: session({ id: "s1", projectPath: "/other" }) }),
          status.ALREADY_EXISTS,
          "SESSION_EXISTS",
        );
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "s1" });
      });

      it("carries SESSION_LIMIT_REACHED with the table, current and max", async () => {
        const table = await newTable(2);
        await fill(table, 2);
        const { metadata } = await details(
          raw.register({ requestId: "", table, session: session({ projectPath: "/third" }) }),
          status.RESOURCE_EXHAUSTED,
          "SESSION_LIMIT_REACHED",
        );
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, current: "2", max: "2" });
      });

      it("carries PROJECT_ALREADY_OPEN with the table, the holder's id and the path", async () => {
        const table = await newTable();
        await fill(table, 1);
        const { metadata } = await details(
          raw.register({ requestId: "", table, session: session({ id: "second", projectPath: "/p/s1/" }) }),
          status.ALREADY_EXISTS,
          "PROJECT_ALREADY_OPEN",
        );
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "s1", project_path: "/p/s1" });
      });

      it("carries REVISION_MISMATCH with the table, the session id and its current revision", async () => {
        const table = await newTable();
        const [s1] = await fill(table, 1);
        const { metadata } = await details(
          raw.remove({ requestId: "", table, id: "s1", expectedRevision: s1!.revision + 1000, allowMissing: false }),
          status.ABORTED,
          "REVISION_MISMATCH",
        );
        expect(Object.fromEntries(metadata)).to.deep.equal({ table, session_id: "s1", current_revision: String(s1!.revision) });
      });
    });
  });
}
