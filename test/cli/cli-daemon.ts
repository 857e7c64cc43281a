/**
 * The daemon a describe block of CLI tests talks to: started before the
 * block's tests, stopped after them once any CLI process a failed test left
 * running is killed.
 */
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { killLeftoverClis } from "./cli-process.js";

export interface CliDaemon {
  /** The running daemon; call it inside tests and later hooks. */
  daemon: () => TestDaemon;
  /** The `--addr` flag that points the CLI at the daemon. */
  addr: () => string[];
}

/** Registers the hooks in the calling describe block. */
export function suiteCliDaemon(): CliDaemon {
  let d: TestDaemon | undefined;

  before(async () => {
    d = await startTestDaemon();
  });

  after(async () => {
    killLeftoverClis();
    await d?.stop();
  });

  const daemon = (): TestDaemon => {
    if (d === undefined) throw new Error("the CLI tests' daemon is not running");
    return d;
  };
  return { daemon, addr: () => ["--addr", daemon().address] };
}
