/**
 * A checkout whose build is missing (cloned, `npm install --ignore-scripts`,
 * or dist/ deleted) says so and how to fix it, instead of a module-resolution
 * stack trace.
 */
import { execFile } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";

describe("bin/session-registry.js without a build", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "sr-unbuilt-"));
    mkdirSync(join(dir, "bin"));
    copyFileSync(join(REPO_ROOT, "bin", "session-registry.js"), join(dir, "bin", "session-registry.js"));
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module" }));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const args of [["--version"], ["serve"]]) {
    it(`\`session-registry ${args.join(" ")}\` says the build is missing and exits 1`, async () => {
      const result = await new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
        const child = execFile(process.execPath, [join(dir, "bin", "session-registry.js"), ...args], (_err, stdout, stderr) =>
          resolve({ code: child.exitCode, stdout, stderr }),
        );
      });
      expect(result.code).to.equal(1);
      expect(result.stdout).to.equal("");
      expect(result.stderr).to.match(
        /^session-registry: \S+dist\/(cli|daemon)\.js is missing: this checkout is not built; run `npm run build` \(`npm ci` does it\)\n$/,
      );
    });
  }
});
