/**
 * docs/http.md's HTTP/JSON examples, run as they stand: every `console` block
 * of its "HTTP/JSON (Connect, gRPC-Web)" section is a transcript of `$ `
 * commands and their output. They run in order, through bash, against one
 * fresh daemon process, with the default HTTP address they name replaced by
 * the one the daemon bound; each output must be the page's but for ids
 * (the same id where the page shows the same one), times and the text it
 * leaves out as `...`.
 */
import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

import { expect } from "chai";

import { DEFAULT_CONFIG } from "../../src/daemon/config.js";
import { spawnDaemon, waitForPort, type DaemonProcess } from "../helpers/daemon-process.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const PAGE = "docs/http.md";
const SECTION = "## HTTP/JSON (Connect, gRPC-Web)";

interface Step {
  command: string;
  expected: string;
}

/** The transcripts of the section, in order. */
function transcripts(page: string): Step[] {
  const from = page.indexOf(`\n${SECTION}\n`);
  if (from < 0) throw new Error(`${PAGE} has no "${SECTION}" section`);
  const rest = page.slice(from + SECTION.length + 2);
  const section = rest.slice(0, rest.search(/^#{2,3} /m));
  const steps: Step[] = [];
  for (const [, block] of section.matchAll(/^```console\n([\s\S]*?)^```$/gm)) {
    const lines = block!.split("\n");
    for (let i = 0; i < lines.length;) {
      if (!lines[i]!.startsWith("$ ")) {
        i++;
        continue;
      }
      let command = lines[i++]!.slice(2);
      while (command.endsWith("\\")) command = `${command.slice(0, -1).trimEnd()} ${lines[i++]!.trim()}`;
      const output: string[] = [];
      while (i < lines.length && !lines[i]!.startsWith("$ ")) output.push(lines[i++]!);
      steps.push({ command, expected: output.join("\n").trim() });
    }
  }
  return steps;
}

/** Ids in order of first appearance as <id1>, <id2>…, and times as <time>. */
function normalize(text: string, ids: Map<string, string>): string {
  return text
    .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, (id) => {
      if (!ids.has(id)) ids.set(id, `<id${ids.size + 1}>`);
      return ids.get(id)!;
    })
    .replace(/\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z/g, "<time>");
}

/** Whether `actual` is `expected`, where `...` in `expected` stands for any text. */
function matches(actual: string, expected: string): boolean {
  const pattern = expected
    .split("...")
    .map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"))
    .join("[\\s\\S]*?");
  return new RegExp(`^${pattern}$`).test(actual);
}

function bash(command: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      "bash",
      ["-c", command],
      // npx finds buf in the clone's node_modules.
      { cwd: ROOT, timeout: 30_000, env: { ...process.env, PATH: `${ROOT}node_modules/.bin:${process.env.PATH ?? ""}` } },
      (err, stdout, stderr) => resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr }),
    );
  });
}

describe("docs/http.md: the HTTP/JSON examples", function () {
  this.timeout(60_000);
  const steps = transcripts(readFileSync(`${ROOT}${PAGE}`, "utf8"));
  let daemon: DaemonProcess;
  let httpAddress: string;

  before(async () => {
    daemon = spawnDaemon(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]);
    await waitForPort(daemon);
    httpAddress = /and http:\/\/(127\.0\.0\.1:\d+)/.exec(daemon.stdout())![1]!;
  });
  after(async () => {
    daemon.child.kill("SIGTERM");
    await daemon.exited;
  });

  it("shows Register, Lookup, List, an error and buf curl, each against the default HTTP address", () => {
    const commands = steps.map((s) => s.command);
    for (const method of ["Register", "Lookup", "List"])
      expect(
        commands.some((c) => c.startsWith("curl ") && c.endsWith(`/${method}`)),
        method,
      ).to.equal(true);
    expect(
      steps.some((s) => s.expected.startsWith('{"code":')),
      "an error",
    ).to.equal(true);
    expect(
      commands.some((c) => c.startsWith("npx buf curl --protocol connect ")),
      "buf curl",
    ).to.equal(true);
    for (const c of commands) expect(c).to.include(`http://${DEFAULT_CONFIG.httpListen!}/`);
  });

  it("answers each command as the page shows, in order, on a fresh daemon", async () => {
    const expectedIds = new Map<string, string>();
    const actualIds = new Map<string, string>();
    for (const { command, expected } of steps) {
      const { code, stdout, stderr } = await bash(command.replaceAll(DEFAULT_CONFIG.httpListen!, httpAddress));
      expect(code, `${command}\n${stderr}`).to.equal(0);
      const actual = normalize(stdout.trim(), actualIds);
      const shown = normalize(expected, expectedIds);
      expect(matches(actual, shown), `${command}\n${PAGE}:\n${shown}\ndaemon:\n${actual}`).to.equal(true);
    }
  });
});
