/**
 * The folders' layering: core imports only itself (and node built-ins), so
 * that the domain rules and the contracts they need live in one place;
 * the stores and the transport reach the domain through core, and the
 * transport never reaches into a store.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Every module specifier a file imports or re-exports, static or dynamic. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
}

function offending(folder: string, allowed: (specifier: string, file: string) => boolean): string[] {
  return tsFiles(join(REPO_ROOT, "src", folder)).flatMap((file) =>
    imports(file)
      .filter((s) => !allowed(s, file))
      .map((s) => `${relative(REPO_ROOT, file)} imports ${s}`),
  );
}

const insideSrc = (specifier: string, file: string, folder: string) =>
  specifier.startsWith(".") && relative(join(REPO_ROOT, "src"), join(file, "..", specifier)).startsWith(`${folder}/`);

describe("layers of src/", () => {
  it("core imports nothing but core and node's built-ins", () => {
    expect(offending("core", (s, file) => s.startsWith("node:") || insideSrc(s, file, "core"))).to.deep.equal([]);
  });

  it("the transport reaches no store: it sees the registry through core", () => {
    expect(offending("transport", (s, file) => !insideSrc(s, file, "store"))).to.deep.equal([]);
  });
});
