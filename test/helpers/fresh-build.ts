/**
 * Mocha's global setup (.mocharc.json "require"): rebuilds dist/, which
 * every test that runs `bin/session-registry.js` as a process executes, so
 * that a test run never exercises a stale build of the sources it checks.
 */
import { bundle } from "../../scripts/build.mjs";

export async function mochaGlobalSetup(): Promise<void> {
  await bundle();
}
