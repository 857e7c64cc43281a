#!/usr/bin/env node
// The package's one executable. `serve`, no command at all, or only flags
// (`npm start`, `session-registry --listen ...`) run the daemon
// (src/daemon/main.ts); every other command, and a bare --help or --version,
// goes to the CLI (src/cli/main.ts). There is no build step: tsx's ESM loader
// compiles the TypeScript sources on the fly.
import { register as registerHooks } from "node:module";
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

// Pin the project's tsconfig so that the directory npx runs from does not matter.
register({ tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)) });

// The CLI imports the SDK workspace package by name, which resolves to its
// TypeScript sources only under the "source" export condition (as in
// `npm start` and mocha, which pass --conditions=source). tsx's register()
// takes no conditions, so a tiny resolve hook adds it; hooks registered later
// run first, so tsx then resolves with the condition in place.
const addSourceCondition = `export async function resolve(specifier, context, next) {
  return next(specifier, { ...context, conditions: [...context.conditions, "source"] });
}`;
registerHooks(`data:text/javascript,${encodeURIComponent(addSourceCondition)}`);

const [first] = process.argv.slice(2);
const TOP_LEVEL_FLAGS = new Set(["-h", "--help", "-V", "--version"]);
const runsDaemon = first === "serve" || first === undefined || (first.startsWith("-") && !TOP_LEVEL_FLAGS.has(first));
const entry = runsDaemon ? "../src/daemon/main.ts" : "../src/cli/main.ts";
await import(new URL(entry, import.meta.url).href);
