// `npm run build` (also run by `npm ci` through "prepare"): compiles the
// package to JavaScript in dist/ and declarations in dist/types/, and builds
// the TypeScript SDK (clients/typescript/dist).
//
// The daemon and the CLI are bundled by esbuild into a few flat files with
// shared chunks: a CLI call then parses one file of our code instead of a
// hundred modules, which is most of its start-up time. The SDK workspace is
// bundled in (the installed package does not depend on it); the runtime
// dependencies stay in node_modules. Every output sits directly in dist/,
// one folder below the root as src/ files are, so the relative URLs of
// src/version.ts and src/assets.ts hold in both.
//
// The live page (src/web) is bundled for browsers into dist/page/: its
// HTML, one script and one stylesheet, minified, with nothing fetched from
// elsewhere at run time; the daemon serves them (src/transport/page.ts).
//
// `--bundle-only` skips the declarations and the SDK: the test suite's
// setup uses it to rebuild what its processes run, in about a second.
import { execFileSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { fileURLToPath, pathToFileURL } from "node:url";

import { build } from "esbuild";

const root = fileURLToPath(new URL("..", import.meta.url));
const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const bundleOnly = process.argv.includes("--bundle-only");
const dist = new URL("../dist/", import.meta.url);

export async function bundle() {
  // The bundle's own files only: dist/types holds tsc's incremental declarations.
  for (const name of existsSync(dist) ? readdirSync(dist) : []) {
    if (/\.js(\.map)?$/.test(name)) rmSync(new URL(name, dist));
  }
  const external = Object.keys(pkg.dependencies).flatMap((name) => [name, `${name}/*`]);
  await build({
    absWorkingDir: root,
    entryPoints: { daemon: "src/daemon/main.ts", cli: "src/cli/main.ts", library: "src/daemon/index.ts" },
    outdir: "dist",
    chunkNames: "[name]-[hash]",
    bundle: true,
    splitting: true,
    format: "esm",
    platform: "node",
    target: "node20",
    // The SDK's "source" export points at its TypeScript, so the bundle never depends on its dist.
    conditions: ["source"],
    external,
    sourcemap: true,
    minifyWhitespace: true,
    minifySyntax: true,
    legalComments: "none",
    logLevel: "warning",
  });
  await bundlePage();
}

/** The live page: dist/page/index.html, app.js and app.css. */
export async function bundlePage() {
  const page = new URL("page/", dist);
  rmSync(page, { recursive: true, force: true });
  mkdirSync(page, { recursive: true });
  await build({
    absWorkingDir: root,
    entryPoints: { app: "src/web/main.ts" },
    outdir: "dist/page",
    bundle: true,
    format: "esm",
    platform: "browser",
    target: ["chrome110", "firefox115", "safari16"],
    tsconfig: "src/web/tsconfig.json",
    minify: true,
    legalComments: "none",
    logLevel: "warning",
  });
  await build({
    absWorkingDir: root,
    entryPoints: { app: "src/web/style.css" },
    outdir: "dist/page",
    bundle: true,
    minify: true,
    logLevel: "warning",
  });
  copyFileSync(new URL("../src/web/index.html", import.meta.url), new URL("index.html", page));
}

// Run as a script (not imported by the tests' setup or the start-up benchmark).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  await bundle();
  if (!bundleOnly) {
    const tsc = fileURLToPath(new URL("../node_modules/typescript/bin/tsc", import.meta.url));
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.build.json"], { cwd: root, stdio: "inherit" });
    execFileSync(process.execPath, [tsc, "-p", "clients/typescript/tsconfig.build.json"], { cwd: root, stdio: "inherit" });
  }
}
