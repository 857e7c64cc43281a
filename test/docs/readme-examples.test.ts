/**
 * The README's TypeScript and Python examples run as printed: each block of
 * its "Examples" section is run against a fresh daemon, its 127.0.0.1:50051
 * replaced by the daemon's address, and must print the session it
 * registered, then list it. The Go example is run by the Go tests, as every
 * block marked `<!-- npm test: go run -->` is (clients/go/sessionregistry/docs_test.go).
 */
import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { readDoc } from "../helpers/markdown.js";

const run = promisify(execFile);

/** The fenced blocks of the README's "## Examples" section, by their language. */
function examples(): Map<string, string> {
  const readme = readDoc("README.md");
  const start = readme.indexOf("\n## Examples\n");
  const section = readme.slice(start, readme.indexOf("\n## ", start + 1));
  return new Map([...section.matchAll(/^```(\w+)\n([\s\S]*?)^```$/gm)].map((m) => [m[1]!, m[2]!]));
}

/** How each language runs a program file; TypeScript from inside the repository, so that `@session-registry/client` resolves. */
const RUNNERS: Record<string, { ext: string; command: string; args: string[]; env?: Record<string, string> }> = {
  ts: { ext: "ts", command: process.execPath, args: ["--import", "tsx", "--conditions=source"] },
  python: { ext: "py", command: "/usr/bin/python3", args: [], env: { PYTHONPATH: join(REPO_ROOT, "clients/python") } },
};

describe("README examples", function () {
  this.timeout(60_000);
  let d: TestDaemon;
  let dir: string;
  beforeEach(async () => {
    d = await startTestDaemon();
    mkdirSync(join(REPO_ROOT, ".tmp"), { recursive: true });
    dir = mkdtempSync(join(REPO_ROOT, ".tmp", "readme-example-"));
  });
  afterEach(async () => {
    rmSync(dir, { recursive: true, force: true });
    await d.stop();
  });

  it("has one in TypeScript, Python and Go", () => {
    expect([...examples().keys()].sort()).to.deep.equal(["go", "python", "ts"]);
  });

  for (const [language, runner] of Object.entries(RUNNERS)) {
    it(`${language}: registers a session, prints it, lists it`, async () => {
      const source = examples().get(language);
      expect(source, `a ${language} block in the README's Examples`).to.be.a("string");
      const file = join(dir, `example.${runner.ext}`);
      writeFileSync(file, source!.replaceAll("127.0.0.1:50051", d.address));
      const { stdout } = await run(runner.command, [...runner.args, file], { cwd: REPO_ROOT, env: { ...process.env, ...runner.env } });
      const [registered, listed] = stdout.split("\n");
      const id = /^([0-9a-f-]{36}) app$/.exec(registered ?? "")?.[1];
      expect(id, `the registered session in ${JSON.stringify(stdout)}`).to.be.a("string");
      expect(listed).to.equal(`${id} /home/me/src/app`);
      expect((await d.client().listPage({})).sessions, "removed at the end").to.deep.equal([]);
    });
  }
});
