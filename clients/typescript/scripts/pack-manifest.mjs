// Packs the package without its "source" export condition.
//
// In the repo, "source" points the workspace at src/*.ts (tsx, mocha and
// the root tsconfig ask for it), so nothing needs building first. In a
// tarball it would only hurt: a consumer whose tools happen to ask for a
// condition named "source" would get TypeScript sources that are not
// shipped. npm packs package.json as it is on disk when prepack ends, so
// `strip` (last step of prepack) writes it without the condition and
// `restore` (postpack) puts the original back.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

const MANIFEST = "package.json";
// The original while a pack runs; one left behind means a pack was interrupted.
const BACKUP = ".package.json.prepack";

function restore() {
  if (existsSync(BACKUP)) renameSync(BACKUP, MANIFEST);
}

function withoutSource(exports) {
  if (exports === null || typeof exports !== "object") return exports;
  return Object.fromEntries(
    Object.entries(exports)
      .filter(([key]) => key !== "source")
      .map(([key, value]) => [key, withoutSource(value)]),
  );
}

function strip() {
  restore();
  const text = readFileSync(MANIFEST, "utf8");
  const manifest = JSON.parse(text);
  writeFileSync(BACKUP, text);
  manifest.exports = withoutSource(manifest.exports);
  writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);
}

const command = process.argv[2];
if (command === "strip") strip();
else if (command === "restore") restore();
else {
  console.error("usage: node scripts/pack-manifest.mjs strip|restore");
  process.exit(2);
}
