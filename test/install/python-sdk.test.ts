/**
 * The Python SDK as its README tells users to install it: a venv over
 * Debian's packages and `pip install` of clients/python, offline. The
 * installed package then works from outside the repo (no PYTHONPATH)
 * against a real daemon, carries its generated stubs and the LICENSE, and
 * the install leaves nothing in the source tree.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";
import { killDaemons, startSmallDaemon } from "../helpers/daemon-process.js";
import { userShell } from "../helpers/user-shell.js";

// A user's shell: no PYTHONPATH pointing into the repo, no npm run settings.
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("PYTHON") && !k.startsWith("PIP_") && !k.toLowerCase().startsWith("npm_")),
);

const sh = userShell(userEnv);

/**
 * Every path under clients/python (a build/ or *.egg-info would show), but
 * for Python's bytecode caches: pip imports the build backend from there,
 * as any import from a clone would.
 */
function sourceTreeState(): string[] {
  return readdirSync(join(REPO_ROOT, "clients/python"), { recursive: true, encoding: "utf8" })
    .filter((path) => !path.split("/").includes("__pycache__"))
    .sort();
}

const CONSUMER = `import json, sys
import session_registry
from session_registry import SessionLimitReachedError, SessionRegistryClient

registered = 0
with SessionRegistryClient(sys.argv[1], timeout=10.0, retry=False) as client:
    while True:
        try:
            client.register("/consumer/project-%d" % registered)
            registered += 1
        except SessionLimitReachedError as e:
            print(json.dumps({"registered": registered, "table": e.table, "current": e.current, "max": e.max,
                              "module": session_registry.__file__}))
            break
`;

const FILES = `import importlib.metadata, json
dist = importlib.metadata.distribution("session-registry")
print(json.dumps({"version": dist.version, "files": [str(f) for f in dist.files]}))
`;

describe("Installing the Python SDK with pip", function () {
  this.timeout(180_000);

  let tmp: string;
  let python: string;
  let treeBefore: string[];
  let daemon: Awaited<ReturnType<typeof startSmallDaemon>> | undefined;
  let address: string;

  before(async () => {
    tmp = mkdtempSync(join(tmpdir(), "sr-py-sdk-"));
    treeBefore = sourceTreeState();
    // As in the README, from the repo's root.
    await sh("/usr/bin/python3", ["-m", "venv", "--system-site-packages", join(tmp, "V")], REPO_ROOT);
    await sh(join(tmp, "V/bin/pip"), ["install", "--no-build-isolation", "--no-index", "./clients/python"], REPO_ROOT);
    python = join(tmp, "V/bin/python");
    writeFileSync(join(tmp, "consumer.py"), CONSUMER);
    writeFileSync(join(tmp, "files.py"), FILES);

    daemon = await startSmallDaemon(2);
    address = daemon.address;
  });

  after(async () => {
    await daemon?.stop();
    killDaemons();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    if (tmp !== undefined) rmSync(tmp, { recursive: true, force: true });
  });

  it("leaves nothing behind in clients/python (no build/, no *.egg-info)", () => {
    expect(sourceTreeState()).to.deep.equal(treeBefore);
  });

  it("installs the client, its generated stubs with their type stubs, and the LICENSE, but no tests", async () => {
    const { files } = JSON.parse(await sh(python, ["files.py"], tmp)) as { files: string[] };
    expect(files).to.include.members([
      "session_registry/__init__.py",
      "session_registry/client.py",
      "session_registry/gen/sessionregistry/v1/session_registry_pb2.py",
      "session_registry/gen/sessionregistry/v1/session_registry_pb2_grpc.py",
      "session_registry/gen/sessionregistry/v1/session_registry_pb2.pyi",
      "session_registry/gen/google/rpc/error_details_pb2.py",
      "session_registry/gen/google/rpc/status_pb2.py",
    ]);
    expect(files.filter((f) => f.endsWith(".dist-info/LICENSE"))).to.have.length(1);
    expect(
      files.filter((f) => /(^|\/)tests?\/|build_backend/.test(f)),
      "tests or build helpers",
    ).to.deep.equal([]);
  });

  it("works from outside the repo: registers up to the limit and reads SessionLimitReachedError's table, current and max", async () => {
    const out = JSON.parse(await sh(python, ["consumer.py", address], tmp)) as Record<string, unknown>;
    const { module, ...printed } = out;
    expect(printed).to.deep.equal({ registered: 2, table: "default", current: 2, max: 2 });
    expect(module, "the installed copy, not the repo's")
      .to.be.a("string")
      .and.satisfy((m: string) => m.startsWith(join(tmp, "V/")));
  });

  it("has the version of the daemon and of the TypeScript SDK", async () => {
    const root = (JSON.parse(readFileSync(join(REPO_ROOT, "package.json"), "utf8")) as { version: string }).version;
    const ts = (JSON.parse(readFileSync(join(REPO_ROOT, "clients/typescript/package.json"), "utf8")) as { version: string }).version;
    const pyproject = await sh(
      "/usr/bin/python3",
      ["-c", "import tomllib; print(tomllib.load(open('clients/python/pyproject.toml', 'rb'))['project']['version'])"],
      REPO_ROOT,
    );
    const { version: installed } = JSON.parse(await sh(python, ["files.py"], tmp)) as { version: string };
    expect({ ts, pyproject: pyproject.trim(), installed }).to.deep.equal({ ts: root, pyproject: root, installed: root });
  });
});
