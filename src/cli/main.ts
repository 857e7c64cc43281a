/**
 * The CLI's process entry (bin/session-registry.js sends every command except
 * `serve` here): wires runCli to the real stdout, stderr, environment and
 * signals, and exits with the code it returns. The process ends by itself
 * once the client is closed, so output written to a pipe is never cut off.
 */
import { hasFlag } from "../args/index.js";
import { packageVersion } from "../version.js";

// grpc-js passes an IP address as the TLS server name when the address is
// one (`--addr 127.0.0.1:50051 --tls-ca ...`), and node then prints a
// DeprecationWarning (DEP0123) on every run, which a CLI user can do nothing
// about. Other warnings still print.
process.noDeprecation = true;

// `session-registry ls | head -1`: the reader going away is not an error.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(process.exitCode ?? 0);
  throw err;
});

let interrupt: AbortController | undefined;

const argv = process.argv.slice(2);
if (argv[0] === "serve") {
  // Normally dispatched by the bin script; kept so that this file alone is a complete entry.
  await import("../daemon/main.js");
} else if (hasFlag(argv, "--version", "-V")) {
  // Answered before the runner loads the SDK and grpc-js, which --version does not need.
  process.stdout.write(`session-registry ${packageVersion()}\n`);
} else {
  const { runCli } = await import("./cli.js");
  process.exitCode = await runCli(argv, {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    interrupted() {
      if (interrupt === undefined) {
        const controller = new AbortController();
        interrupt = controller;
        // once: a second Ctrl-C gets the default behaviour and kills the process.
        const stop = () => controller.abort();
        process.once("SIGINT", stop);
        process.once("SIGTERM", stop);
      }
      return interrupt.signal;
    },
  });
}
