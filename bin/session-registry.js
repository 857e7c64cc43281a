#!/usr/bin/env node
// Launches the daemon from its TypeScript sources (there is no build step):
// registers tsx's ESM loader, then runs src/daemon/main.ts. The daemon does
// not import the SDK package, so the "source" export condition is not needed.
import { fileURLToPath } from "node:url";
import { register } from "tsx/esm/api";

// Pin the project's tsconfig so that the directory npx runs from does not matter.
register({ tsconfig: fileURLToPath(new URL("../tsconfig.json", import.meta.url)) });
await import(new URL("../src/daemon/main.ts", import.meta.url).href);
