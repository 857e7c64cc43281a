/**
 * Runs a small Go program against the Go client (clients/go), for tests
 * that check the SDKs agree: `go run` in the offline GOPATH environment of
 * scripts/go.sh, so the program imports the client by its module path. The
 * first run in a fresh clone compiles gRPC (tens of seconds); later runs
 * hit the build cache in .tmp/go.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { REPO_ROOT } from "../cli/cli-process.js";

/** The import path of the client's helper package. */
export const GO_CLIENT = "github.com/session-registry/session-registry/clients/go/sessionregistry";

/** How long a test that runs a Go program may take: a cold build of gRPC included. */
export const GO_TIMEOUT_MS = 300_000;

/** Runs `source` (a main package) with `input` on stdin; returns its stdout. */
export function runGo(source: string, input = ""): string {
  const dir = mkdtempSync(join(tmpdir(), "sr-go-program-"));
  try {
    writeFileSync(join(dir, "main.go"), source);
    return execFileSync("bash", ["scripts/go.sh", "go", "run", join(dir, "main.go")], {
      cwd: REPO_ROOT,
      encoding: "utf8",
      input,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
