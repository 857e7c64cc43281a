/**
 * The long-running invocations of the binary: `watch` and `keepalive --every`
 * print line by line until a signal and then exit 0, and `serve` (or no
 * command) runs the daemon. Plus the top-level help, which the bin script
 * routes to the CLI rather than to the daemon.
 */
import { expect } from "chai";
import { SessionRegistryClient } from "@session-registry/client";

import type { SessionJson } from "../../src/cli/format.js";
import { uniqueName } from "../helpers/daemon.js";
import { suiteCliDaemon } from "./cli-daemon.js";
import { runCli, startCli, summary } from "./cli-process.js";

describe("CLI streams, serve and help", function () {
  this.timeout(60_000);

  const { daemon, addr } = suiteCliDaemon();

  it("watch prints the snapshot, then each change on its own line, and exits 0 on SIGINT", async () => {
    const table = uniqueName("w");
    const client = daemon().client();
    await client.createTable({ table });
    const first = await client.register({ projectPath: "/w/first", id: "first", metadata: { tool: "editor" } }, { table });

    const watch = startCli(["watch", "--table", table, ...addr()]);
    await watch.waitForStdout(/SESSION id=first .*\n/);
    const second = await client.register({ projectPath: "/w/the second", id: "second" }, { table });
    await watch.waitForStdout(/REGISTERED id=second .*\n/);
    await client.remove("first", { table });
    await watch.waitForStdout(/REMOVED id=first .*\n/);
    watch.child.kill("SIGINT");
    const r = await watch.exited;

    expect(r.code, summary(r)).to.equal(0);
    expect(r.stderr).to.equal("");
    expect(r.stdout.split("\n")).to.deep.equal([
      `rev=${first.revision} SNAPSHOT sessions=1`,
      `rev=${first.revision} SESSION id=first name=first path=/w/first revision=${first.revision} metadata=tool=editor`,
      `rev=${second.revision} REGISTERED id=second name="the second" path="/w/the second" revision=${second.revision}`,
      `rev=${second.revision + 1} REMOVED id=first name=first path=/w/first revision=${first.revision} metadata=tool=editor`,
      "",
    ]);
  });

  it("watch --json --from prints one JSON object per event, and exits 0 on SIGTERM", async () => {
    const table = uniqueName("wj");
    const client = daemon().client();
    await client.createTable({ table });
    const before = await client.register({ projectPath: "/j/one", id: "one", ttlMs: 60_000 }, { table });

    // From the first session's revision: its REGISTERED event is replayed, no snapshot.
    const watch = startCli(["watch", "--table", table, "--from", String(before.revision), "--json", ...addr()]);
    await watch.waitForStdout(/"type":"REGISTERED".*\n/);
    await client.update({ id: "one", table, name: "renamed" });
    await watch.waitForStdout(/"type":"UPDATED".*\n/);
    watch.child.kill("SIGTERM");
    const r = await watch.exited;

    expect(r.code, summary(r)).to.equal(0);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as { kind: string; type: string; revision: number; session: SessionJson });
    expect(lines.map((l) => [l.kind, l.type, l.session.id, l.session.name])).to.deep.equal([
      ["event", "REGISTERED", "one", "one"],
      ["event", "UPDATED", "one", "renamed"],
    ]);
    expect(lines[0]!.revision).to.equal(before.revision);
    expect(lines[0]!.session).to.include({ projectPath: "/j/one", ttl: "1m" });
    expect(lines[0]!.session.metadata).to.deep.equal({});
  });

  it("keepalive --every renews until SIGINT, then exits 0", async () => {
    const table = uniqueName("k");
    const client = daemon().client();
    await client.createTable({ table });
    await client.register({ projectPath: "/k/app", id: "k1", ttlMs: 60_000 }, { table });

    const keep = startCli(["keepalive", "k1", "--every", "100ms", "--table", table, "--json", ...addr()]);
    await keep.waitForStdout(/(.*\n){2}/);
    keep.child.kill("SIGINT");
    const r = await keep.exited;

    expect(r.code, summary(r)).to.equal(0);
    const lines = r.stdout
      .trimEnd()
      .split("\n")
      .map((l) => JSON.parse(l) as SessionJson);
    expect(lines.length).to.be.at.least(2);
    for (const l of lines) expect(l).to.include({ id: "k1", ttl: "1m" });
  });

  it("serve runs the daemon and exits 0 on SIGTERM", async () => {
    const LISTENING = /^session-registry listening on 127\.0\.0\.1:(\d+)\b.*\n/;
    const daemon = startCli(["serve", "--listen", "127.0.0.1:0"]);
    await daemon.waitForStdout(LISTENING);
    const port = Number(LISTENING.exec(daemon.stdout())![1]);
    const client = new SessionRegistryClient(`127.0.0.1:${port}`);
    try {
      expect((await client.getTable()).name).to.equal("default");
    } finally {
      client.close();
    }
    daemon.child.kill("SIGTERM");
    const r = await daemon.exited;
    expect(r.code, summary(r)).to.equal(0);
    expect(r.stdout).to.match(LISTENING);
  });

  it("a bare session-registry prints usage and starts nothing; daemon flags without serve get a hint", async () => {
    const [bare, old] = await Promise.all([runCli([]), runCli(["--listen", "127.0.0.1:0", "--max-sessions", "3"])]);
    expect(bare.code, summary(bare)).to.equal(0);
    expect(bare.stdout).to.match(/^Usage: session-registry <command> \[flags\]\n/);
    expect(bare.stdout).to.not.match(/listening/);
    expect(bare.stderr).to.equal("");
    expect(old.code, summary(old)).to.equal(2);
    expect(old.stdout).to.equal("");
    expect(old.stderr).to.equal(
      "session-registry: --listen is a flag of the daemon, which only `serve` starts: session-registry serve --listen 127.0.0.1:0 --max-sessions 3\n" +
        "Run `session-registry --help` for usage.\n",
    );
  });

  it("--help lists the commands and exit codes", async () => {
    const top = await runCli(["--help"]);
    expect(top.code, summary(top)).to.equal(0);
    expect(top.stderr).to.equal("");
    for (const command of [
      "serve",
      "status",
      "completion",
      "tables",
      "create-table",
      "get-table",
      "delete-table",
      "register",
      "lookup",
      "ls",
      "update",
      "rm",
      "watch",
      "keepalive",
    ]) {
      expect(top.stdout).to.match(new RegExp(`^  ${command}\\b`, "m"));
    }
    expect(top.stdout).to.include("session-registry serve --help");
    expect(top.stdout).to.match(/^Exit codes:\n {2}0 +success\n/m);
    expect(top.stdout).to.match(/^ {2}9 +unauthenticated or permission denied$/m);
  });
});
