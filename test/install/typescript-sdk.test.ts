/**
 * The TypeScript SDK as its README tells users to take it: `npm pack` in
 * clients/typescript, then `npm install` of the tarball into a new project
 * outside the repo. A TypeScript consumer there type-checks with tsc under
 * moduleResolution nodenext and bundler, and runs against a real daemon
 * (registering up to the limit and reading SessionLimitReachedError's
 * typed fields).
 */
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";
import { killDaemons, startSmallDaemon } from "../helpers/daemon-process.js";
import { userShell } from "../helpers/user-shell.js";

// npm run (npm test) exports npm_* settings of the repo (its prefix, its
// package); a user's shell has none. Where the user keeps npm's cache and
// config still counts.
const KEPT_NPM_SETTINGS = new Set(["npm_config_cache", "npm_config_userconfig", "npm_config_registry"]);
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.toLowerCase().startsWith("npm_") || KEPT_NPM_SETTINGS.has(k.toLowerCase())),
);

const sh = userShell(userEnv);

const CONSUMER = `import { SessionLimitReachedError, SessionRegistryClient, type Session } from "@session-registry/client";
import { Session as SessionMessage } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

const address = process.argv[2];
if (address === undefined) throw new Error("usage: node consumer.js HOST:PORT");

const client = new SessionRegistryClient(address, { retry: false });
const registered: Session[] = [];
try {
  for (;;) {
    try {
      registered.push(await client.register({ projectPath: \`/consumer/project-\${registered.length}\` }));
    } catch (err) {
      if (!(err instanceof SessionLimitReachedError)) throw err;
      // Typed properties: tsc rejects this file if any of them is missing or of another type.
      const table: string = err.table;
      const current: number = err.current;
      const max: number = err.max;
      const viaGen: string = SessionMessage.fromPartial({ id: registered[0]?.id ?? "" }).id;
      console.log(JSON.stringify({ registered: registered.length, table, current, max, name: err.name, viaGen }));
      break;
    }
  }
} finally {
  client.close();
}
`;

function tsconfig(compilerOptions: Record<string, unknown>): string {
  const base = { target: "ES2022", lib: ["ES2023"], types: ["node"], strict: true, skipLibCheck: false, outDir: "out" };
  return JSON.stringify({ compilerOptions: { ...base, ...compilerOptions }, files: ["consumer.ts"] }, null, 2);
}

describe("Installing the TypeScript SDK from its tarball", function () {
  this.timeout(300_000);

  let tmp: string;
  let app: string;
  let tarball: string;
  let daemon: Awaited<ReturnType<typeof startSmallDaemon>> | undefined;
  let address: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "sr-ts-sdk-"));
    // As in the README: npm pack in clients/typescript (its prepack builds dist/).
    await sh("npm", ["pack", "--pack-destination", tmp], join(REPO_ROOT, "clients/typescript"));
    const packed = readdirSync(tmp).filter((f) => f.endsWith(".tgz"));
    expect(packed, "npm pack's tarball").to.have.length(1);
    tarball = join(tmp, packed[0]!);

    app = join(tmp, "app");
    mkdirSync(app);
    writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }, null, 2));
    await sh("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", tarball, "typescript@5.9.3", "@types/node@20"], app);
    writeFileSync(join(app, "consumer.ts"), CONSUMER);
    writeFileSync(join(app, "tsconfig.json"), tsconfig({ module: "NodeNext", moduleResolution: "NodeNext" }));
    writeFileSync(join(app, "tsconfig.bundler.json"), tsconfig({ module: "preserve", moduleResolution: "bundler", noEmit: true }));
    writeFileSync(join(app, "tsconfig.esnext.json"), tsconfig({ module: "ESNext", moduleResolution: "bundler", noEmit: true }));
    // A project of the kind that resolves its own workspace packages through a "source" condition.
    writeFileSync(
      join(app, "tsconfig.source.json"),
      tsconfig({ module: "NodeNext", moduleResolution: "NodeNext", customConditions: ["source"], noEmit: true }),
    );

    daemon = await startSmallDaemon(2);
    address = daemon.address;
  });

  after(async () => {
    await daemon?.stop();
    killDaemons();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it("holds dist, LICENSE, README and package.json, and neither sources nor tests", async () => {
    const files = (await sh("tar", ["tzf", tarball], tmp)).trim().split("\n");
    expect(files).to.include.members([
      "package/package.json",
      "package/LICENSE",
      "package/README.md",
      "package/dist/index.js",
      "package/dist/index.d.ts",
      "package/dist/errors.d.ts",
      "package/dist/gen/sessionregistry/v1/session_registry.js",
    ]);
    const outside = files.filter(
      (f) => !f.startsWith("package/dist/") && !["package/package.json", "package/LICENSE", "package/README.md"].includes(f),
    );
    expect(outside, "files besides dist/").to.deep.equal([]);
    expect(
      files.filter((f) => /\.test\.|\/test\/|\.ts$/.test(f) && !f.endsWith(".d.ts")),
      "tests or TypeScript sources",
    ).to.deep.equal([]);
  });

  it('shows consumers no "source" export condition', async () => {
    const manifest = await sh("tar", ["xzf", tarball, "-O", "package/package.json"], tmp);
    const { exports } = JSON.parse(manifest) as { exports: Record<string, Record<string, string>> };
    expect(Object.keys(exports)).to.deep.equal([".", "./gen/*"]);
    // Node asked for that condition still loads the compiled code.
    const script =
      "const m = await import('@session-registry/client'); " +
      "console.log(typeof m.SessionRegistryClient, import.meta.resolve('@session-registry/client'))";
    const loaded = await sh(process.execPath, ["--conditions=source", "--input-type=module", "-e", script], app);
    expect(loaded.trim()).to.match(/^function file:.*\/node_modules\/@session-registry\/client\/dist\/index\.js$/);
    for (const [path, conditions] of Object.entries(exports)) {
      expect(Object.keys(conditions), path).to.deep.equal(["types", "default"]);
    }
  });

  it("type-checks a consumer under moduleResolution nodenext", async () => {
    await sh(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.json", "--noEmit"], app);
  });

  it("type-checks a consumer under moduleResolution bundler (module preserve and esnext)", async () => {
    await sh(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.bundler.json"], app);
    await sh(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.esnext.json"], app);
  });

  it('type-checks a consumer whose tsconfig asks for a "source" condition', async () => {
    await sh(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.source.json"], app);
  });

  it("runs: registers up to the limit and reads SessionLimitReachedError's table, current and max", async () => {
    await sh(join(app, "node_modules/.bin/tsc"), ["-p", "tsconfig.json"], app);
    const out = await sh(process.execPath, [join(app, "out/consumer.js"), address], app);
    const { viaGen, ...printed } = JSON.parse(out) as Record<string, unknown>;
    expect(printed).to.deep.equal({ registered: 2, table: "default", current: 2, max: 2, name: "SessionLimitReachedError" });
    expect(viaGen, "a generated message built through the gen/* export").to.be.a("string").that.is.not.equal("");
  });
});
