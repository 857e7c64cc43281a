/**
 * The daemon as users install it: `npm pack` at the root, then `npm install
 * -g` of the tarball into a temporary prefix outside the repository, exactly
 * as README.md ("Install") says. The installed `session-registry` serves,
 * its CLI calls work, and nothing of the clone (sources, tsx) is needed.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, posix } from "node:path";
import { promisify } from "node:util";

import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";
import { links } from "../helpers/markdown.js";

const run = promisify(execFile);
const version = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;

describe("the daemon package, installed with npm install -g", function () {
  // npm pack runs the full build (prepare); the install resolves the runtime dependencies.
  this.timeout(300_000);

  let dir: string;
  let prefix: string;
  let installed: string;
  let tarball: string;
  let daemon: ChildProcess | undefined;
  let addr: string;
  /** Runs the installed command from the temporary directory, with no SESSION_REGISTRY_* or NODE_* variables. */
  const cli = (...args: string[]) => run(join(prefix, "bin", "session-registry"), args, { cwd: dir, env: cleanEnv() });

  function cleanEnv(): NodeJS.ProcessEnv {
    return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESSION_REGISTRY_") && !k.startsWith("NODE_")));
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "sr-install-"));
    prefix = join(dir, "prefix");
    const packed = await run("npm", ["pack", "--pack-destination", dir, "--silent"], { cwd: REPO_ROOT });
    tarball = join(dir, packed.stdout.trim().split("\n").pop()!);
    await run("npm", ["install", "-g", "--prefix", prefix, "--prefer-offline", "--no-audit", "--no-fund", tarball], { cwd: dir });
    installed = join(prefix, "lib", "node_modules", "session-registry");
  });

  after(async () => {
    if (daemon !== undefined && daemon.exitCode === null && daemon.signalCode === null) {
      daemon.kill("SIGKILL");
      await once(daemon, "exit");
    }
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("packs the build, the proto, the licence and the README, and no sources or tests", async () => {
    const { stdout } = await run("tar", ["tzf", tarball]);
    const files = stdout.split("\n").filter(Boolean);
    for (const f of [
      "bin/session-registry.js",
      "dist/cli.js",
      "dist/daemon.js",
      "dist/library.js",
      "dist/types/daemon/index.d.ts",
      "LICENSE",
      "README.md",
      "proto/sessionregistry/v1/session_registry.proto",
      "src/gen/descriptors.binpb",
    ]) {
      expect(files, f).to.include(`package/${f}`);
    }
    expect(
      files.filter((f) => /^package\/(test|bench|scripts|clients)\//.test(f) || (/\.ts$/.test(f) && !f.endsWith(".d.ts"))),
    ).to.deep.equal([]);
  });

  it("ships the docs its README links to: every relative link of the installed README and docs/ resolves, but for the repository's own tree", () => {
    // The SDKs are packages of their own, and the build's sources and scripts are the repository's, not the installed daemon's.
    const repositoryOnly = /^(clients|scripts|third_party)\/|^buf\.gen\./;
    const pages = [
      "README.md",
      ...readdirSync(join(installed, "docs"))
        .filter((f) => f.endsWith(".md"))
        .map((f) => `docs/${f}`),
    ];
    expect(pages).to.include("docs/configuration.md");
    const dangling: string[] = [];
    for (const page of pages) {
      for (const { target } of links(readFileSync(join(installed, page), "utf8"))) {
        if (/^[a-z]+:/.test(target) || target.startsWith("#")) continue;
        const path = posix.normalize(posix.join(posix.dirname(page), target.split("#")[0]!));
        if (!repositoryOnly.test(path) && !existsSync(join(installed, path))) dangling.push(`${page} -> ${target}`);
      }
    }
    expect(dangling).to.deep.equal([]);
  });

  it("installs without tsx or any other build tool", () => {
    for (const tool of ["tsx", "esbuild", "typescript", "@bufbuild/buf", "mocha"]) {
      expect(existsSync(join(installed, "node_modules", tool)), tool).to.equal(false);
    }
  });

  it("answers --version with the package's version", async () => {
    const { stdout } = await cli("--version");
    expect(stdout.trim()).to.equal(`session-registry ${version}`);
  });

  it("serves, and its CLI calls work against it", async () => {
    daemon = spawn(
      join(prefix, "bin", "session-registry"),
      ["serve", "--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0", "--max-sessions", "2"],
      {
        cwd: dir,
        env: cleanEnv(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    addr = await new Promise<string>((resolve, reject) => {
      let out = "";
      let err = "";
      daemon!.stdout!.setEncoding("utf8").on("data", (chunk: string) => {
        out += chunk;
        const m = /listening on (127\.0\.0\.1:\d+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      daemon!.stderr!.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
      daemon!.once("exit", (code) => reject(new Error(`the installed daemon exited with ${code}:\n${out}\n${err}`)));
    });

    await cli("register", "--addr", addr, "--path", "/work/alpha", "--name", "alpha");
    await cli("register", "--addr", addr, "--path", "/work/beta", "--name", "beta");
    const full = await cli("register", "--addr", addr, "--path", "/work/gamma").then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(full, "the third register fails: the table holds 2").to.not.equal(undefined);
    expect(full)
      .to.have.property("stderr")
      .that.matches(/Maximum sessions reached \(2\/2/);
    const { stdout } = await cli("lookup", "--addr", addr, "--name", "beta");
    expect(stdout).to.include("/work/beta");
  });

  it("exports the daemon as a library (session-registry/daemon)", async () => {
    // A project that has the package in its node_modules, as `npm install <tarball>` gives it.
    const project = join(dir, "embedder");
    mkdirSync(join(project, "node_modules"), { recursive: true });
    symlinkSync(installed, join(project, "node_modules", "session-registry"));
    writeFileSync(
      join(project, "embed.mjs"),
      `import { parseConfig, startDaemon } from "session-registry/daemon";
const daemon = await startDaemon(parseConfig(["--listen", "127.0.0.1:0", "--http-listen", "off", "--log-level", "silent"], {}));
console.log(daemon.address);
await daemon.shutdown();
`,
    );
    const { stdout } = await run(process.execPath, ["embed.mjs"], { cwd: project, env: cleanEnv() });
    expect(stdout.trim()).to.match(/^127\.0\.0\.1:\d+$/);
  });

  it("stops gracefully on SIGTERM", async () => {
    expect(daemon, "the daemon of the previous test").to.not.equal(undefined);
    daemon!.kill("SIGTERM");
    const [code] = (await once(daemon!, "exit")) as [number | null];
    expect(code).to.equal(0);
  });
});
