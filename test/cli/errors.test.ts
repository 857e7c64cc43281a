/**
 * The CLI's failures: the sentence on stderr, the JSON error with --json, and
 * the exit code of each error class. Every run here fails without changing
 * the daemon's state, so they all start at once in `before` and each test
 * checks its own.
 */
import { createServer } from "node:net";

import { expect } from "chai";

import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { killLeftoverClis, runCli, summary, type CliResult } from "./cli-process.js";

/** A port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
  return port;
}

function failed(r: CliResult, code: number): string {
  expect(r.code, summary(r)).to.equal(code);
  expect(r.stdout, summary(r)).to.equal("");
  return r.stderr;
}

describe("CLI errors", function () {
  this.timeout(60_000);

  let d: TestDaemon;
  let deadPort: number;
  const runs = new Map<string, Promise<CliResult>>();
  const result = (name: string): Promise<CliResult> => runs.get(name)!;

  before(async () => {
    // The default table holds one session at most, so the limit message is the TUI's exactly.
    d = await startTestDaemon({ config: { maxSessions: 1 } });
    deadPort = await closedPort();
    const client = d.client();
    await client.register({ projectPath: "/p/default", id: "d1" });
    await client.createTable({ table: "dup", maxSessions: 5 });
    const s1 = await client.register({ projectPath: "/p/x", id: "s1" }, { table: "dup" });
    await client.update({ id: "s1", table: "dup", name: "moved" }); // now past s1.revision

    const addr = ["--addr", d.address];
    const start = (name: string, args: string[]) => runs.set(name, runCli(args));
    start("limit", ["register", "--path", "/p/other", ...addr]);
    start("duplicate path", ["register", "--table", "dup", "--path", "/p/x", ...addr]);
    start("session not found", ["rm", "nobody", ...addr]);
    start("table not found, json", ["get-table", "nope", "--json", ...addr]);
    start("revision mismatch", ["update", "s1", "--table", "dup", "--name", "x", "--expected-revision", String(s1.revision), ...addr]);
    start("invalid argument", ["register", "--table", "dup", "--path", "/a/../b", "--id", "bad id", ...addr]);
    start("unreachable", ["tables", "--addr", `127.0.0.1:${deadPort}`]);
    start("bad duration", ["register", "--path", "/p/y", "--ttl", "forever", ...addr]);
  });

  after(async () => {
    // Settle every run before the daemon goes away, even if a test failed early.
    await Promise.all(runs.values());
    killLeftoverClis();
    await d.stop();
  });

  it("exits 5 with the TUI's message when the session limit is reached", async () => {
    expect(failed(await result("limit"), 5)).to.equal("Maximum sessions reached (1/1 sessions open). Close a session first.\n");
  });

  it("exits 4 naming the holder when the project path is already open", async () => {
    expect(failed(await result("duplicate path"), 4)).to.equal("Project /p/x is already open in session s1 of table dup.\n");
  });

  it("exits 3 when the session is not found", async () => {
    expect(failed(await result("session not found"), 3)).to.equal("Session nobody not found.\n");
  });

  it("exits 3 with a JSON error on stderr when the table is not found and --json is set", async () => {
    const stderr = failed(await result("table not found, json"), 3);
    expect(JSON.parse(stderr)).to.deep.equal({
      error: {
        code: "NOT_FOUND",
        reason: "TABLE_NOT_FOUND",
        message: "Table nope not found.",
        details: 'table "nope" not found',
        metadata: { table: "nope" },
        exitCode: 3,
      },
    });
  });

  it("exits 6 with the current revision when the expected revision is stale", async () => {
    const current = (await d.client().lookup({ id: "s1" }, { table: "dup" })).revision;
    expect(failed(await result("revision mismatch"), 6)).to.equal(
      `Session s1 changed (now at revision ${current}); re-read it and retry.\n`,
    );
  });

  it("exits 7 with one line per field violation when the daemon rejects the request", async () => {
    expect(failed(await result("invalid argument"), 7)).to.equal(
      [
        "Invalid request:",
        '  session.id: must contain only [A-Za-z0-9._:-], got "bad id"',
        '  session.project_path: must not contain a ".." segment, got "/a/../b"',
        "",
      ].join("\n"),
    );
  });

  it("exits 8 when nothing listens at the address", async () => {
    const stderr = failed(await result("unreachable"), 8);
    expect(stderr).to.equal(
      `Cannot reach the registry at 127.0.0.1:${deadPort}: nothing listens there (connection refused); ` +
        "is the daemon running (session-registry serve)? Else check --addr.\n",
    );
  });

  it("exits 2 naming the flag, with a pointer to the command's --help, on a bad flag value", async () => {
    expect(failed(await result("bad duration"), 2)).to.equal(
      'session-registry register: --ttl must be a duration such as 30s, 500ms, 5m or 1h, got "forever"\n' +
        "Run `session-registry register --help` for usage.\n",
    );
  });
});
