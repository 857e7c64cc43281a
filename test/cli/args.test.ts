/**
 * The shared argument module (src/args/) and what the CLI's start loads.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";

import { expect } from "chai";

import { editDistance, formatDuration, parseDuration, parseFlags, suggest, UsageError } from "../../src/args/index.js";
import { REPO_ROOT } from "./cli-process.js";

describe("argument module", () => {
  it("prints a duration in the largest unit that divides it exactly, and each form parses back", () => {
    const cases: [number, string][] = [
      [300_000, "5m"],
      [90_000, "90s"],
      [1500, "1500ms"],
      [7_200_000, "2h"],
      [5_400_000, "90m"],
      [1, "1ms"],
      [0, "0s"],
    ];
    for (const [ms, text] of cases) {
      expect(formatDuration(ms), String(ms)).to.equal(text);
      expect(parseDuration(text), text).to.equal(ms);
    }
  });

  it("suggests near words only: one edit for short words, two for longer, a swap counting one", () => {
    const flags = ["addr", "json", "listen", "max-sessions", "max-tables", "tls-ca", "tls-cert"];
    expect(suggest("adr", flags)).to.equal("addr");
    expect(suggest("jsno", flags)).to.equal("json");
    expect(suggest("lisetn", flags)).to.equal("listen");
    expect(suggest("max-sesions", flags)).to.equal("max-sessions");
    expect(suggest("max-sess", flags)).to.equal("max-sessions");
    // "max" starts two flags: no guess.
    expect(suggest("max", flags)).to.equal(undefined);
    expect(suggest("frobnicate", flags)).to.equal(undefined);
    expect(suggest("x", flags)).to.equal(undefined);
    expect(editDistance("ab", "ba")).to.equal(1);
  });

  it("names the flag meant in an unknown flag's error", () => {
    expect(() => parseFlags(["--tls-cat", "x"], { "tls-ca": { type: "string" }, "tls-cert": { type: "string" } })).to.throw(
      UsageError,
      /^unknown flag --tls-cat; did you mean --tls-ca\?$/,
    );
  });
});

/**
 * The modules the CLI imports statically, from src/cli/main.ts: files of this
 * repository (the SDK's sources included) and the names of the packages they
 * import. Dynamic imports (`await import()`) are not followed: they load only
 * when their path runs.
 */
function staticImportGraph(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const sdk = join(REPO_ROOT, "clients/typescript/src/index.ts");
  const visit = (file: string): void => {
    if (files.has(file)) return;
    files.add(file);
    const source = readFileSync(file, "utf8")
      .replace(/\/\*[\s\S]*?\*\//g, "")
      .replace(/^\s*\/\/.*$/gm, "");
    for (const m of source.matchAll(/^\s*(?:import|export)\s(?:[^;"']*?\sfrom\s)?["']([^"']+)["']/gm)) {
      const spec = m[1]!;
      if (/^(?:import|export)\s+type\s/.test(m[0].trim())) continue;
      if (spec.startsWith("node:")) continue;
      if (spec.startsWith(".")) visit(resolve(dirname(file), spec.replace(/\.js$/, ".ts")));
      else if (spec === "@session-registry/client") visit(sdk);
      else packages.add(spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : spec.split("/")[0]!);
    }
  };
  visit(join(REPO_ROOT, entry));
  return { files, packages };
}

describe("the CLI's start", () => {
  it("answers --version with node built-ins only: the entry loads the runner (and grpc-js) lazily", () => {
    const { files, packages } = staticImportGraph("src/cli/main.ts");
    expect([...packages]).to.deep.equal([]);
    expect([...files].map((f) => f.slice(REPO_ROOT.length)).sort()).to.deep.equal([
      "src/args/index.ts",
      "src/cli/main.ts",
      "src/version.ts",
    ]);
  });

  it("runs a command with only the SDK, grpc-js and protobuf at top level: no daemon, store, logger or metrics", () => {
    const { files, packages } = staticImportGraph("src/cli/cli.ts");
    expect([...packages].sort()).to.deep.equal(["@bufbuild/protobuf", "@grpc/grpc-js"]);
    const ours = [...files].map((f) => f.slice(REPO_ROOT.length));
    expect(ours.filter((f) => /^src\/(daemon|store|transport|core)\//.test(f))).to.deep.equal([]);
    expect(ours).to.include("src/args/index.ts");
  });
});
