/**
 * The daemon's entry point (`session-registry serve`, `npm start`).
 *
 * stdout carries exactly one line, "session-registry listening on ADDRESS
 * [and http://ADDRESS] (...)", so
 * that scripts can wait for it and read the port; logs go to stderr.
 * Exit codes: 0 after a signal-driven shutdown (or --help), 1 when start-up
 * fails, 2 on bad flags or variables, on TLS or auth tokens files that
 * cannot be read or do not hold what their flag needs (etcd TLS files included),
 * and on a --listen, --http-listen or --metrics-listen address it cannot listen on (a port
 * in use, say).
 */
import { format } from "node:util";

import * as grpc from "@grpc/grpc-js";

import { packageVersion } from "../version.js";
import { ConfigError, parseConfig, usageText, type DaemonConfig } from "./config.js";
import { createLogger } from "./logger.js";
import { startedByNpm, watchParent } from "./parent.js";
import type { RunningDaemon } from "./server.js";

/** Signals this close together count as one (see onSignal). */
const SAME_SIGNAL_MS = 500;

async function main(): Promise<void> {
  let config: DaemonConfig;
  try {
    config = parseConfig(process.argv.slice(2), process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`session-registry: ${err.message}\nrun with --help for usage\n`);
    process.exitCode = 2;
    return;
  }
  if (config.help) {
    process.stdout.write(usageText());
    return;
  }
  if (config.version) {
    process.stdout.write(`session-registry ${packageVersion()}\n`);
    return;
  }

  const log = createLogger({ level: config.logLevel });
  // grpc-js writes its own lines ("E No address added ...") to stderr; fold
  // them into our JSON lines. Its verbosity still follows GRPC_VERBOSITY.
  grpc.setLogger({
    error: (...args: unknown[]) => log.warn({ source: "grpc-js" }, format(...args)),
    info: (...args: unknown[]) => log.info({ source: "grpc-js" }, format(...args)),
    debug: (...args: unknown[]) => log.debug({ source: "grpc-js" }, format(...args)),
  });
  let daemon: RunningDaemon;
  try {
    // Loaded only now, so that --help and a bad flag answer without loading the services behind it.
    const { startDaemon } = await import("./server.js");
    daemon = await startDaemon(config, { logger: log });
  } catch (err) {
    process.stderr.write(`session-registry: ${err instanceof Error ? err.message : String(err)}\n`);
    log.debug({ err }, "start-up failed");
    process.exitCode = err instanceof ConfigError ? 2 : 1;
    return;
  }
  const { address, httpUrl } = daemon;
  const facts = [
    config.store === "etcd" ? `store: etcd (${config.etcdEndpoints.join(",")})` : `store: ${config.store}`,
    `max-sessions: ${config.maxSessions}`,
    `security: ${daemon.security}`,
    `auth: ${daemon.auth ? "tokens" : "none"}`,
    daemon.metricsAddress !== undefined ? `metrics: http://${daemon.metricsAddress}/metrics` : "metrics: off",
  ];
  // Last, so that the address and the facts before it stay where scripts find them.
  const problem = daemon.storeProblem;
  if (problem !== undefined) facts.push(`health: NOT_SERVING because ${problem}`);
  let firstSignalAt: number | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (firstSignalAt !== undefined) {
      // Ctrl-C under `npm start` arrives twice: the terminal signals the whole
      // process group, and npm passes its own copy on. One so soon after the
      // first is that copy, not a user insisting.
      if (performance.now() - firstSignalAt < SAME_SIGNAL_MS) return;
      // A second signal means "now": skip the grace. Exit 1 says the shutdown
      // was not clean (calls may have been cut off, the store not closed).
      log.warn({ signal }, "second signal; exiting immediately");
      process.exit(1);
    }
    firstSignalAt = performance.now();
    log.info({ signal, graceMs: config.shutdownGraceMs }, "signal received; shutting down");
    daemon.shutdown(config.shutdownGraceMs).then(
      () => process.exit(0),
      (err: unknown) => {
        log.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  if (startedByNpm(process.env)) {
    watchParent((parentPid) => {
      log.info({ parentPid }, "the daemon's parent process (the shell npm started it in) is gone; shutting down");
      onSignal("SIGTERM");
    });
  }
  // Only now: a supervisor may signal as soon as it reads the line, and must get a clean shutdown.
  const http = httpUrl !== undefined ? ` and ${httpUrl}` : "";
  process.stdout.write(`session-registry listening on ${address}${http} (${facts.join(", ")})\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`session-registry: unexpected failure: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
