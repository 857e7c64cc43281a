#!/usr/bin/env node
// The package's one executable, running the build in dist/ (`npm run build`;
// `npm ci` runs it). `serve` runs the daemon with the flags after it; every
// other command, and no command at all, goes to the CLI.
const argv = process.argv.slice(2);
const runsDaemon = argv[0] === "serve";
if (runsDaemon) process.argv.splice(2, 1);
const entry = new URL(runsDaemon ? "../dist/daemon.js" : "../dist/cli.js", import.meta.url);
try {
  await import(entry.href);
} catch (err) {
  if (err?.code === "ERR_MODULE_NOT_FOUND" && String(err.message).includes(entry.pathname)) {
    process.stderr.write(
      `session-registry: ${entry.pathname} is missing: this checkout is not built; run \`npm run build\` (\`npm ci\` does it)\n`,
    );
    process.exit(1);
  }
  throw err;
}
