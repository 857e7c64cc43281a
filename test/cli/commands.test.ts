/**
 * The client subcommands through the real binary against a real daemon: each
 * one's happy path, in text and in --json. Independent invocations run
 * concurrently, since every process start compiles the sources through tsx.
 */
import { expect } from "chai";

import type { SessionJson, TableJson } from "../../src/cli/format.js";
import { uniqueName } from "../helpers/daemon.js";
import { suiteCliDaemon } from "./cli-daemon.js";
import { parseJson, runCli, summary, type CliResult } from "./cli-process.js";

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

function ok(r: CliResult): CliResult {
  expect(r.code, summary(r)).to.equal(0);
  expect(r.stderr, summary(r)).to.equal("");
  return r;
}

describe("CLI commands", function () {
  // Each run starts a node process that compiles the CLI through tsx.
  this.timeout(60_000);

  const { daemon, addr } = suiteCliDaemon();

  it("creates, shows, lists and deletes tables", async () => {
    const [a, b] = [uniqueName("a"), uniqueName("b")];
    const [created, createdJson] = await Promise.all([
      runCli(["create-table", a, "--max-sessions", "3", ...addr()]),
      runCli(["create-table", b, "--json", ...addr()]),
    ]);
    expect(ok(created).stdout).to.match(new RegExp(`^name: +${a}$`, "m"));
    expect(created.stdout).to.match(/^max sessions: +3$/m);
    expect(created.stdout).to.match(/^result: +created$/m);
    const bJson = parseJson(ok(createdJson)) as { created: boolean; table: TableJson };
    expect(bJson).to.deep.include({ created: true });
    expect(bJson.table).to.include({ name: b, maxSessions: 10, sessionCount: 0 });
    expect(bJson.table.createTime).to.match(ISO);

    const [tables, shown, deleted] = await Promise.all([
      runCli(["tables", ...addr()]),
      runCli(["get-table", a, "--json", ...addr()]),
      runCli(["delete-table", b, ...addr()]),
    ]);
    const lines = ok(tables).stdout.trimEnd().split("\n");
    expect(lines[0]).to.match(/^NAME +SESSIONS +MAX +REVISION +CREATED$/);
    expect(lines.find((l) => l.startsWith(`${a} `))).to.match(new RegExp(`^${a} +0 +3 +\\d+ +\\d{4}-\\d{2}-\\d{2}T\\S+Z$`));
    expect(lines.find((l) => l.startsWith("default "))).to.match(/^default +\d+ +10 /);
    expect(parseJson(ok(shown))).to.include({ name: a, maxSessions: 3, sessionCount: 0 });
    expect(ok(deleted).stdout).to.equal(`Deleted table ${b}.\n`);
    expect((await daemon().client().listTables()).map((t) => t.name)).to.not.include(b);
  });

  it("registers, looks up, lists, updates, keeps alive and removes sessions", async () => {
    const table = uniqueName("s");
    const client = daemon().client();
    await client.createTable({ table, maxSessions: 5 });
    const t = ["--table", table, ...addr()];

    const [registered, second] = await Promise.all([
      runCli(["register", "--path", "/p/app", "--id", "s1", "--meta", "tool=editor", "--meta", "eq=a=b", "--ttl", "30s", "--json", ...t]),
      runCli(["register", "--path", "/p/bee", "--name", "the bee", ...t]),
    ]);
    const s1 = parseJson(ok(registered)) as SessionJson;
    expect(s1).to.include({ id: "s1", name: "app", projectPath: "/p/app", ttl: "30s" });
    expect(s1.metadata).to.deep.equal({ tool: "editor", eq: "a=b" });
    expect(s1.expireTime).to.match(ISO);
    expect(s1.createTime).to.match(ISO);
    expect(ok(second).stdout).to.match(/^name: +the bee$/m);
    expect(second.stdout).to.match(/^path: +\/p\/bee$/m);
    expect(second.stdout).to.match(/^ttl: +-$/m);
    const beeId = /^id: +(\S+)$/m.exec(second.stdout)?.[1];
    expect(beeId).to.be.a("string");

    // (The other lookup keys and ls --json run in process, in units.test.ts.)
    const [byId, list, kept] = await Promise.all([
      runCli(["lookup", "--id", "s1", "--json", ...t]),
      // One session per page: ls must follow the page tokens to show both.
      runCli(["ls", "--page-size", "1", ...t]),
      runCli(["keepalive", "s1", ...t]),
    ]);
    // The keep-alive runs alongside, so the expiry may have moved on.
    const found = parseJson(ok(byId)) as SessionJson;
    expect(found).to.deep.equal({ ...s1, expireTime: found.expireTime });
    expect(Date.parse(found.expireTime!)).to.be.at.least(Date.parse(s1.expireTime!));
    const rows = ok(list).stdout.trimEnd().split("\n");
    expect(rows[0]).to.match(/^ID +NAME +PATH +REVISION +TTL +EXPIRES +CREATED +METADATA$/);
    expect(rows).to.have.length(3);
    // Registered concurrently, so in either order.
    expect(rows.find((r) => r.startsWith("s1 "))).to.match(/^s1 +app +\/p\/app +\d+ +30s +\S+Z +\S+Z +eq=a=b,tool=editor$/);
    expect(rows.find((r) => r.startsWith(`${beeId} `))).to.match(new RegExp(`^${beeId} +the bee +/p/bee +\\d+ +- +- +\\S+Z +-$`));
    expect(ok(kept).stdout).to.match(/^Session s1 expires at \d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z \(ttl 30s\)\.\n$/);

    const [updated, removed] = await Promise.all([
      runCli(["update", "s1", "--name", "renamed", "--clear-meta", "--no-ttl", "--expected-revision", String(s1.revision), "--json", ...t]),
      runCli(["rm", beeId!, ...t]),
    ]);
    const u = parseJson(ok(updated)) as SessionJson;
    expect(u).to.include({ id: "s1", name: "renamed", ttl: null, expireTime: null });
    expect(u.metadata).to.deep.equal({});
    expect(u.revision).to.be.greaterThan(s1.revision);
    expect(ok(removed).stdout).to.equal(`Removed session ${beeId} (/p/bee).\n`);

    const removedJson = await runCli(["rm", "s1", "--expected-revision", String(u.revision), "--json", ...t]);
    expect(parseJson(ok(removedJson))).to.deep.include({ removed: true });
    expect((parseJson(removedJson) as { session: SessionJson | null }).session).to.include({ id: "s1", name: "renamed" });
    expect((await client.getTable(table)).sessionCount).to.equal(0);
  });
});
