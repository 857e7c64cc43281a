/**
 * The reads: lookup by id, path and name (exact matches, normalized paths,
 * the oldest session of a name), and list with its pages and tokens.
 */
import { expect } from "chai";
import { InvalidArgumentError, SessionNotFoundError, status } from "@session-registry/client";

import { encodePageToken } from "../../../src/core/page-token.js";
import { expectError } from "../../helpers/daemon.js";
import { ids, type RegistryFixture, type Session } from "./fixture.js";

export function lookupListTests(fx: RegistryFixture): void {
  describe("lookup", () => {
    it("finds a session by id, by project path and by name", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "find-me", name: "Finder", projectPath: "/find/me" }, { table });
      expect(await fx.client.lookup({ id: "find-me" }, { table })).to.deep.equal(s);
      expect(await fx.client.lookup({ projectPath: "/find/me" }, { table })).to.deep.equal(s);
      expect(await fx.client.lookup({ name: "Finder" }, { table })).to.deep.equal(s);
    });

    it("finds nothing in an empty table, by any key", async () => {
      const table = await fx.newTable();
      const byId = await expectError(fx.client.lookup({ id: "x" }, { table }), SessionNotFoundError);
      expect(byId.code).to.equal(status.NOT_FOUND);
      expect(byId.reason).to.equal("SESSION_NOT_FOUND");
      expect(byId.metadata).to.include({ table, session_id: "x" });
      const byPath = await expectError(fx.client.lookup({ projectPath: "/x" }, { table }), SessionNotFoundError);
      expect(byPath.metadata).to.include({ table });
      const byName = await expectError(fx.client.lookup({ name: "x" }, { table }), SessionNotFoundError);
      expect(byName.metadata).to.include({ table });
    });

    it("finds nothing for an unknown key in a full table", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 10);
      await expectError(fx.client.lookup({ id: "s11" }, { table }), SessionNotFoundError);
      await expectError(fx.client.lookup({ projectPath: "/p/s11" }, { table }), SessionNotFoundError);
      await expectError(fx.client.lookup({ name: "s11" }, { table }), SessionNotFoundError);
    });

    it("finds the right session among several", async () => {
      const table = await fx.newTable();
      const all = await fx.fill(table, 6);
      for (const s of all) {
        expect(await fx.client.lookup({ id: s.id }, { table })).to.deep.equal(s);
        expect(await fx.client.lookup({ projectPath: s.projectPath }, { table })).to.deep.equal(s);
        expect(await fx.client.lookup({ name: s.name }, { table })).to.deep.equal(s);
      }
    });

    it("normalizes the path it looks up: a trailing slash, doubled slashes and . segments still match", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ projectPath: "/srv/a/b/c" }, { table });
      for (const spelling of ["/srv/a/b/c/", "/srv//a/b/c", "/srv/./a/b/c", "//srv/a/b/c/./"]) {
        expect(await fx.client.lookup({ projectPath: spelling }, { table })).to.deep.equal(s);
      }
    });

    it("matches a path exactly: no prefix, no subdirectory, no other case, no trailing space", async () => {
      const table = await fx.newTable();
      await fx.client.register({ projectPath: "/srv/a/b/c" }, { table });
      for (const other of ["/srv/a/b", "/srv/a/b/c/d", "/SRV/a/b/c", "/srv/a/b/C", "/srv/a/b/c ", "/srv/a/b/c2"]) {
        await expectError(fx.client.lookup({ projectPath: other }, { table }), SessionNotFoundError);
      }
    });

    it("matches a name exactly: no prefix, no other case, no trailing or leading space", async () => {
      const table = await fx.newTable();
      await fx.client.register({ name: "Alpha", projectPath: "/alpha" }, { table });
      for (const other of ["Alph", "alpha", "ALPHA", "Alpha ", " Alpha", "Alpha2"]) {
        await expectError(fx.client.lookup({ name: other }, { table }), SessionNotFoundError);
      }
      expect((await fx.client.lookup({ name: "Alpha" }, { table })).projectPath).to.equal("/alpha");
    });

    it("returns the oldest session with a name, and the next oldest once it is removed", async () => {
      const table = await fx.newTable();
      const a = await fx.client.register({ id: "A", name: "shared", projectPath: "/A" }, { table });
      const b = await fx.client.register({ id: "B", name: "shared", projectPath: "/B" }, { table });
      await fx.client.register({ id: "C", name: "shared", projectPath: "/C" }, { table });
      expect(await fx.client.lookup({ name: "shared" }, { table })).to.deep.equal(a);
      await fx.client.remove("A", { table });
      expect(await fx.client.lookup({ name: "shared" }, { table })).to.deep.equal(b);
      await fx.client.remove("B", { table });
      expect((await fx.client.lookup({ name: "shared" }, { table })).id).to.equal("C");
    });

    it("orders sessions by creation, not by rename, when an old session takes a name", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "C", name: "other", projectPath: "/C" }, { table });
      await fx.client.register({ id: "B", name: "shared", projectPath: "/B" }, { table });
      await fx.client.register({ id: "D", name: "other", projectPath: "/D" }, { table });
      expect((await fx.client.lookup({ name: "shared" }, { table })).id).to.equal("B");
      // C is older than B: once renamed, it wins.
      await fx.client.update({ table, id: "C", name: "shared" });
      expect((await fx.client.lookup({ name: "shared" }, { table })).id).to.equal("C");
      // D is newer than B: renaming it changes nothing.
      await fx.client.update({ table, id: "D", name: "shared" });
      expect((await fx.client.lookup({ name: "shared" }, { table })).id).to.equal("C");
      // C renamed away: B, the oldest left, wins again.
      await fx.client.update({ table, id: "C", name: "elsewhere" });
      expect((await fx.client.lookup({ name: "shared" }, { table })).id).to.equal("B");
    });

    it("no longer finds a renamed session by its old name", async () => {
      const table = await fx.newTable();
      await fx.client.register({ id: "r", name: "before", projectPath: "/r" }, { table });
      await fx.client.update({ table, id: "r", name: "after" });
      await expectError(fx.client.lookup({ name: "before" }, { table }), SessionNotFoundError);
      expect((await fx.client.lookup({ name: "after" }, { table })).id).to.equal("r");
    });
  });

  describe("list", () => {
    it("lists an empty table as no sessions, no next page and a total of 0", async () => {
      const table = await fx.newTable();
      const page = await fx.client.listPage({ table });
      expect(page.sessions).to.deep.equal([]);
      expect(page.nextPageToken).to.equal("");
      expect(page.totalSize).to.equal(0);
    });

    it("lists every session, oldest first, exactly as register returned them", async () => {
      const table = await fx.newTable();
      const registered = await fx.fill(table, 5);
      const page = await fx.client.listPage({ table });
      expect(page.sessions).to.deep.equal(registered);
      expect(page.nextPageToken).to.equal("");
      expect(page.totalSize).to.equal(5);
    });

    it("lists updated sessions as stored now, in their original creation order", async () => {
      const table = await fx.newTable();
      const [s1, s2, s3] = await fx.fill(table, 3);
      const s1b = await fx.client.update({ table, id: s1!.id, name: "renamed", metadata: { k: "v" } });
      expect(s1b.revision).to.be.greaterThan(s1!.revision);
      const page = await fx.client.listPage({ table });
      expect(page.sessions).to.deep.equal([s1b, s2, s3]);
    });

    it("reports the table revision the page was read at", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 3);
      const tableRevision = (await fx.client.getTable(table)).revision;
      const page = await fx.client.listPage({ table });
      expect(page.revision).to.equal(tableRevision);
      await fx.client.remove("s2", { table });
      const page2 = await fx.client.listPage({ table });
      expect(page2.revision).to.equal((await fx.client.getTable(table)).revision);
      expect(page2.revision).to.be.greaterThan(page.revision);
    });

    it("pages through five sessions two at a time in three pages", async () => {
      const table = await fx.newTable();
      const all = await fx.fill(table, 5);
      const p1 = await fx.client.listPage({ table, pageSize: 2 });
      expect(ids(p1.sessions)).to.deep.equal(["s1", "s2"]);
      expect(p1.nextPageToken).to.not.equal("");
      expect(p1.totalSize).to.equal(5);
      const p2 = await fx.client.listPage({ table, pageSize: 2, pageToken: p1.nextPageToken });
      expect(ids(p2.sessions)).to.deep.equal(["s3", "s4"]);
      expect(p2.nextPageToken).to.not.equal("");
      expect(p2.totalSize).to.equal(5);
      const p3 = await fx.client.listPage({ table, pageSize: 2, pageToken: p2.nextPageToken });
      expect(ids(p3.sessions)).to.deep.equal(["s5"]);
      expect(p3.nextPageToken).to.equal("");
      expect([...p1.sessions, ...p2.sessions, ...p3.sessions]).to.deep.equal(all);
    });

    it("neither skips nor repeats a session when one on an earlier page is removed between pages", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 5);
      const p1 = await fx.client.listPage({ table, pageSize: 2 });
      await fx.client.remove("s1", { table });
      const p2 = await fx.client.listPage({ table, pageSize: 2, pageToken: p1.nextPageToken });
      expect(ids(p2.sessions)).to.deep.equal(["s3", "s4"]);
      expect(p2.totalSize).to.equal(4);
      const p3 = await fx.client.listPage({ table, pageSize: 2, pageToken: p2.nextPageToken });
      expect(ids(p3.sessions)).to.deep.equal(["s5"]);
      expect(p3.nextPageToken).to.equal("");
    });

    it("neither skips nor repeats a session when the last one of the previous page is removed between pages", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 5);
      const p1 = await fx.client.listPage({ table, pageSize: 2 });
      await fx.client.remove("s2", { table });
      const p2 = await fx.client.listPage({ table, pageSize: 2, pageToken: p1.nextPageToken });
      expect(ids(p2.sessions)).to.deep.equal(["s3", "s4"]);
      const p3 = await fx.client.listPage({ table, pageSize: 2, pageToken: p2.nextPageToken });
      expect(ids(p3.sessions)).to.deep.equal(["s5"]);
    });

    it("shows a session registered between pages on a later page", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 4);
      const p1 = await fx.client.listPage({ table, pageSize: 2 });
      await fx.client.register({ id: "late", projectPath: "/late" }, { table });
      const rest: string[] = [];
      let token = p1.nextPageToken;
      while (token !== "") {
        const page = await fx.client.listPage({ table, pageSize: 2, pageToken: token });
        rest.push(...ids(page.sessions));
        token = page.nextPageToken;
      }
      expect(rest).to.deep.equal(["s3", "s4", "late"]);
    });

    it("refuses a page token whose cursor no store made, naming page_token", async () => {
      const table = await fx.newTable();
      await fx.fill(table, 3);
      const { tableUid } = await fx.client.listPage({ table, pageSize: 2 });
      for (const cursor of ["x", "-1", "1.5", "99999999999999999999"]) {
        const forged = encodePageToken(table, tableUid, cursor);
        const err = await expectError(fx.client.listPage({ table, pageSize: 2, pageToken: forged }), InvalidArgumentError);
        expect(
          err.fieldViolations.map((v) => v.field),
          cursor,
        ).to.deep.equal(["page_token"]);
      }
    });

    it("yields every session through the async iterator, across pages", async () => {
      const table = await fx.newTable();
      const all = await fx.fill(table, 5);
      const seen: Session[] = [];
      for await (const s of fx.client.list({ table, pageSize: 2 })) seen.push(s);
      expect(seen).to.deep.equal(all);
      const seenDefaultPage: Session[] = [];
      for await (const s of fx.client.list({ table })) seenDefaultPage.push(s);
      expect(seenDefaultPage).to.deep.equal(all);
    });
  });
}
