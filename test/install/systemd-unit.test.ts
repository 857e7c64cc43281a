/**
 * deploy/session-registry.service: systemd accepts every line of it
 * (`systemd-analyze verify` prints nothing: an unknown key or a bad value
 * is only a warning there, so the test reads its output, not its exit
 * code), and it runs the compiled daemon with node directly, at the path
 * `npm install -g` gives the package under the /usr/local prefix.
 */
import { execFile } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";

import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";

const run = promisify(execFile);
const UNIT = join(REPO_ROOT, "deploy", "session-registry.service");
const GLOBAL_PACKAGE = "/usr/local/lib/node_modules/session-registry/";

describe("the systemd unit (deploy/session-registry.service)", () => {
  const unit = readFileSync(UNIT, "utf8");
  const setting = (key: string) => [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);

  it("passes systemd-analyze verify without a warning", async () => {
    const { stdout, stderr } = await run("systemd-analyze", ["verify", UNIT]);
    expect(stderr + stdout).to.equal("");
  });

  it("runs the built daemon with node, no npm or shell between, so SIGTERM reaches it", () => {
    const [execStart] = setting("ExecStart");
    const [node, script, ...args] = execStart!.split(" ");
    expect(node).to.equal("/usr/bin/node");
    expect(script!.startsWith(GLOBAL_PACKAGE), script).to.equal(true);
    expect(existsSync(join(REPO_ROOT, script!.slice(GLOBAL_PACKAGE.length))), `${script} is a file of the package`).to.equal(true);
    expect(args).to.deep.equal(["serve"]);
    expect(setting("KillSignal")).to.deep.equal(["SIGTERM"]);
  });

  it("applies the hardening systemd offers", () => {
    for (const [key, value] of Object.entries({
      DynamicUser: "yes",
      NoNewPrivileges: "yes",
      ProtectSystem: "strict",
      ProtectHome: "yes",
      PrivateTmp: "yes",
      PrivateDevices: "yes",
      CapabilityBoundingSet: "",
      RestrictAddressFamilies: "AF_INET AF_INET6 AF_UNIX",
      SystemCallFilter: "@system-service",
    })) {
      expect(setting(key), key).to.include(value);
    }
  });
});
