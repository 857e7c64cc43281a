/**
 * The guard on the contract: scripts/check-breaking.sh (in `npm test`) must
 * pass the proto as it is, pass an addition, and fail a change that breaks
 * clients of the last release: a removed field, a renumbered tag. Each case
 * runs the script on a copy of proto/ edited as a careless change would.
 */
import { execFile } from "node:child_process";
import { cp, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";

const PROTO = "proto/sessionregistry/v1/session_registry.proto";

interface Run {
  code: number;
  output: string;
}

/** Runs the breaking check on a copy of the contract, edited by `edit`. */
async function checkEdited(edit: (proto: string) => string): Promise<Run> {
  const dir = await mkdtemp(join(tmpdir(), "breaking-"));
  try {
    for (const entry of ["buf.yaml", "proto", "third_party"]) await cp(join(REPO_ROOT, entry), join(dir, entry), { recursive: true });
    const file = join(dir, PROTO);
    const before = await readFile(file, "utf8");
    const after = edit(before);
    expect(after, "the edit applies").to.not.equal(before);
    await writeFile(file, after);
    return await new Promise<Run>((resolve) => {
      execFile("bash", [join(REPO_ROOT, "scripts/check-breaking.sh"), dir], (err, stdout, stderr) => {
        resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, output: stdout + stderr });
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Replaces the one line of `proto` that equals `line` (trimmed). */
function replaceLine(proto: string, line: string, by: string): string {
  const lines = proto.split("\n");
  const at = lines.findIndex((l) => l.trim() === line);
  expect(at, `the proto has a line "${line}"`).to.be.greaterThan(-1);
  lines[at] = by;
  return lines.join("\n");
}

/** The line that opens `message Session`: a new field goes right after it. */
const SESSION_START = "message Session {";

describe("the contract's breaking-change check", function () {
  this.timeout(60_000);

  it("passes the contract as it is", async () => {
    const run = await checkEdited((p) => `${p}\n`);
    expect(run.code, run.output).to.equal(0);
  });

  it("passes a new field: v1 may grow", async () => {
    const run = await checkEdited((p) =>
      p.replace(SESSION_START, `${SESSION_START}\n  // A field a later version adds.\n  string added_later = 99;`),
    );
    expect(run.code, run.output).to.equal(0);
  });

  it("fails a removed field, naming it, and says what to do", async () => {
    const run = await checkEdited((p) => replaceLine(p, "string project_path = 3;", "  reserved 3;"));
    expect(run.code).to.equal(1);
    expect(run.output).to.match(/Previously present field "3" with name "project_path" on message "Session" was deleted/);
    expect(run.output).to.include("breaks clients of v0.1.0.binpb");
    expect(run.output).to.include("Add to v1 instead of changing it");
  });

  it("fails a renumbered tag", async () => {
    const run = await checkEdited((p) => replaceLine(p, "string project_path = 3;", "  string project_path = 30;"));
    expect(run.code).to.equal(1);
    expect(run.output).to.match(/field "3" with name "project_path" on message "Session"/);
  });
});
