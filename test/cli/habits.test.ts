/**
 * The habits the CLI shares with etcdctl and grpcurl, through the real
 * binary: `status` and its exit codes, `--version` on every command, "did
 * you mean" for mistyped commands and flags, the output forms (-w table,
 * json, value; --field), durations printed as given, and shell completion.
 */
import { execFile } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

import { expect } from "chai";

import type { CliFailure } from "../../src/cli/errors.js";
import { packageVersion } from "../../src/version.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { killLeftoverClis, parseJson, runCli, startCli, summary, type CliProcess, type CliResult } from "./cli-process.js";

const run = promisify(execFile);

function ok(r: CliResult): CliResult {
  expect(r.code, summary(r)).to.equal(0);
  expect(r.stderr, summary(r)).to.equal("");
  return r;
}

/** The --json form of a failure, on stderr. */
function errorJson(text: string): CliFailure["json"] {
  return (JSON.parse(text) as { error: CliFailure["json"] }).error;
}

function usage(r: CliResult, stderr: string): void {
  expect(r.code, summary(r)).to.equal(2);
  expect(r.stdout, summary(r)).to.equal("");
  expect(r.stderr).to.equal(stderr);
}

describe("CLI habits", function () {
  // Each run starts a node process that compiles the CLI through tsx.
  this.timeout(60_000);

  let d: TestDaemon;
  let etcdDown: CliProcess | undefined;
  let etcdDownAddress: string;
  let addr: string[];

  before(async () => {
    d = await startTestDaemon();
    addr = ["--addr", d.address];
    // A daemon process whose etcd is not there (nothing listens on port 1): it starts, NOT_SERVING.
    etcdDown = startCli([
      "serve",
      "--listen",
      "127.0.0.1:0",
      "--store",
      "etcd",
      "--etcd-endpoints",
      "http://127.0.0.1:1",
      "--log-level",
      "silent",
    ]);
    const LISTENING = /listening on (127\.0\.0\.1:\d+)/;
    await etcdDown.waitForStdout(LISTENING);
    etcdDownAddress = LISTENING.exec(etcdDown.stdout())![1]!;
  });

  after(async () => {
    if (etcdDown !== undefined) {
      etcdDown.child.kill("SIGTERM");
      await etcdDown.exited;
    }
    killLeftoverClis();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    await d?.stop();
  });

  describe("status", () => {
    it("shows a serving daemon's version, store and tables, and exits 0", async () => {
      const table = uniqueName("st");
      const client = d.client();
      await client.createTable({ table, maxSessions: 4 });
      await client.register({ projectPath: `/st/${table}` }, { table });
      const [text, json, value] = await Promise.all([
        runCli(["status", ...addr]),
        runCli(["status", "-w", "json", ...addr]),
        runCli(["status", "-w", "value", ...addr]),
      ]);
      const lines = ok(text).stdout.split("\n");
      expect(lines.slice(0, 5)).to.deep.equal([
        `address: ${d.address}`,
        "status:  SERVING",
        `version: ${packageVersion()}`,
        "store:   memory (available)",
        "",
      ]);
      expect(lines[5]).to.match(/^TABLE +SESSIONS +MAX$/);
      expect(lines.find((l) => l.startsWith(`${table} `))).to.match(new RegExp(`^${table} +1 +4$`));
      const doc = parseJson(ok(json)) as { tables: { name: string; sessionCount: number; maxSessions: number }[] | null };
      expect(doc).to.deep.include({
        address: d.address,
        status: "SERVING",
        version: packageVersion(),
        store: "memory",
        storeAvailable: true,
      });
      expect(doc.tables).to.deep.include({ name: table, sessionCount: 1, maxSessions: 4 });
      expect(ok(value).stdout).to.equal("SERVING\n");
    });

    it("exits 8 and says NOT_SERVING when the daemon's store is unavailable", async () => {
      const at = ["--addr", etcdDownAddress];
      const [text, json] = await Promise.all([runCli(["status", ...at]), runCli(["status", "--json", ...at])]);
      expect(text.code, summary(text)).to.equal(8);
      expect(text.stdout).to.equal(
        `address: ${etcdDownAddress}\nstatus:  NOT_SERVING (its store, etcd, is unavailable)\nversion: ${packageVersion()}\nstore:   etcd (unavailable)\n`,
      );
      expect(json.code, summary(json)).to.equal(8);
      expect(parseJson(json)).to.deep.equal({
        address: etcdDownAddress,
        status: "NOT_SERVING",
        version: packageVersion(),
        store: "etcd",
        storeAvailable: false,
        tables: null,
      });
    });

    it("exits 8 when the daemon cannot be reached", async () => {
      // Port 1 on loopback: nothing listens there.
      const r = await runCli(["status", "--addr", "127.0.0.1:1", "--timeout", "5s"]);
      expect(r.code, summary(r)).to.equal(8);
      expect(r.stdout).to.equal("");
      expect(r.stderr).to.not.equal("");
    });
  });

  it("--version answers on every command, before anything else is checked", async () => {
    const runs = await Promise.all([
      runCli(["--version"]),
      runCli(["-V"]),
      runCli(["lookup", "--version"]),
      runCli(["status", "-V", "--addr", "127.0.0.1:1"]),
      runCli(["register", "--ttl", "forever", "--version"]),
      runCli(["serve", "--version"]),
      runCli(["serve", "--listen", "127.0.0.1:0", "-V"]),
    ]);
    for (const r of runs) expect(ok(r).stdout).to.equal(`session-registry ${packageVersion()}\n`);
  });

  it("suggests the command or flag meant, on stderr, with exit 2", async () => {
    const [command, flag, daemonFlag, far, jsonFlag] = await Promise.all([
      runCli(["lokup", "--id", "x"]),
      runCli(["lookup", "--adr", "127.0.0.1:1"]),
      runCli(["serve", "--lisen", "127.0.0.1:0"]),
      runCli(["frobnicate"]),
      runCli(["status", "--jsn"]),
    ]);
    usage(command, 'session-registry: unknown command "lokup"; did you mean lookup?\nRun `session-registry --help` for usage.\n');
    usage(flag, "session-registry lookup: unknown flag --adr; did you mean --addr?\nRun `session-registry lookup --help` for usage.\n");
    usage(daemonFlag, "session-registry: unknown flag --lisen; did you mean --listen?\nrun with --help for usage\n");
    usage(far, 'session-registry: unknown command "frobnicate"\nRun `session-registry --help` for usage.\n');
    usage(jsonFlag, "session-registry status: unknown flag --jsn; did you mean --json?\nRun `session-registry status --help` for usage.\n");
  });

  describe("output forms", () => {
    it("-w value prints one value per line: the command's own, or --field's; durations as given", async () => {
      const table = uniqueName("out");
      const t = ["--table", table, ...addr];
      const client = d.client();
      await client.createTable({ table, maxSessions: 5 });
      const registered = await runCli([
        "register",
        "--path",
        "/o/a",
        "--id",
        "a",
        "--ttl",
        "300",
        "--meta",
        "tool=vim",
        "-w",
        "value",
        ...t,
      ]);
      expect(ok(registered).stdout).to.equal("a\n");
      await client.register({ id: "b", projectPath: "/o/b", ttlMs: 90_000 }, { table });
      const [ids, ttls, tool, lookedUp, ttlText, jsonTtl] = await Promise.all([
        runCli(["ls", "-w", "value", ...t]),
        runCli(["ls", "--field", "ttl", ...t]),
        runCli(["lookup", "--id", "a", "--field", "metadata.tool", ...t]),
        runCli(["lookup", "--path", "/o/b", "--write-out=value", ...t]),
        runCli(["lookup", "--id", "a", ...t]),
        runCli(["lookup", "--id", "a", "--json", ...t]),
      ]);
      expect(ok(ids).stdout).to.equal("a\nb\n");
      expect(ok(ttls).stdout).to.equal("5m\n90s\n");
      expect(ok(tool).stdout).to.equal("vim\n");
      expect(ok(lookedUp).stdout).to.equal("b\n");
      expect(ok(ttlText).stdout).to.match(/^ttl: +5m$/m);
      expect(parseJson(ok(jsonTtl))).to.include({ ttl: "5m" });
    });

    it("refuses an unknown form, a missing field and contradicting flags with exit 2", async () => {
      const [form, both, field] = await Promise.all([
        runCli(["tables", "-w", "yaml", ...addr]),
        runCli(["tables", "--json", "-w", "value", ...addr]),
        runCli(["tables", "--field", "colour", ...addr]),
      ]);
      usage(
        form,
        'session-registry tables: -w/--write-out must be one of table, json, value, got "yaml"\nRun `session-registry tables --help` for usage.\n',
      );
      // --json was asked for, so the usage error is JSON too.
      expect(both.code, summary(both)).to.equal(2);
      expect(errorJson(both.stderr)).to.include({ code: "USAGE", message: "--json and -w value exclude each other" });
      expect(field.code, summary(field)).to.equal(2);
      expect(field.stderr).to.match(/^session-registry tables: --field colour: no such field in the output/);
    });

    it("a usage error comes out as JSON with -w json as with --json", async () => {
      const r = await runCli(["lookup", "-w", "json", "--bogus"]);
      expect(r.code, summary(r)).to.equal(2);
      expect(errorJson(r.stderr)).to.include({ code: "USAGE", exitCode: 2 });
    });
  });

  describe("completion", () => {
    let dir: string;
    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "sr-completion-"));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** What bash completes for `words`, the last one being the word under the cursor. */
    async function complete(script: string, words: readonly string[]): Promise<string[]> {
      const driver = [
        `source ${JSON.stringify(script)}`,
        `COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")})`,
        `COMP_CWORD=${words.length - 1}`,
        "_session_registry",
        'printf "%s\\n" "${COMPREPLY[@]}"',
      ].join("\n");
      const { stdout } = await run("bash", ["-c", driver]);
      return stdout.split("\n").filter((l) => l !== "");
    }

    it("bash completes commands, each command's flags, -w's forms and the daemon's flags", async () => {
      const r = await runCli(["completion", "bash"]);
      const script = join(dir, "session-registry.bash");
      await writeFile(script, ok(r).stdout);
      expect(await complete(script, ["session-registry", "st"])).to.deep.equal(["status"]);
      expect(await complete(script, ["session-registry", "lookup", "--p"])).to.deep.equal(["--path"]);
      expect(await complete(script, ["session-registry", "ls", "-w", ""])).to.deep.equal(["table", "json", "value"]);
      expect(await complete(script, ["session-registry", "serve", "--etcd-e"])).to.deep.equal(["--etcd-endpoints"]);
      expect(await complete(script, ["session-registry", "completion", ""])).to.deep.equal(["bash", "zsh"]);
    });

    it("zsh gets the same function through bashcompinit; a missing shell is a usage error", async () => {
      const [zsh, none] = await Promise.all([runCli(["completion", "zsh"]), runCli(["completion", "fish"])]);
      expect(ok(zsh).stdout).to.match(/^#compdef session-registry\n/);
      expect(zsh.stdout).to.include("autoload -U +X bashcompinit && bashcompinit");
      expect(zsh.stdout).to.include("complete -o default -F _session_registry session-registry");
      usage(none, "session-registry completion: give one shell: bash or zsh\nRun `session-registry completion --help` for usage.\n");
    });

    it("has the help its usage error points to, as `completion --help` and as `help completion`", async () => {
      const [flag, word] = await Promise.all([runCli(["completion", "--help"]), runCli(["help", "completion"])]);
      expect(ok(flag).stdout).to.match(/^Usage: session-registry completion bash\|zsh\n/);
      expect(flag.stdout).to.include("source <(session-registry completion bash)");
      expect(ok(word).stdout).to.equal(flag.stdout);
    });
  });
});
