/**
 * The package's version, read from its package.json. This file sits one
 * folder below the package root both as a source (src/) and once built
 * (dist/), so the same relative URL finds it in a clone and in an install.
 */
import { readFileSync } from "node:fs";

let cached: string | undefined;

export function packageVersion(): string {
  if (cached === undefined) {
    const pkg: unknown = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
    cached = typeof pkg === "object" && pkg !== null && "version" in pkg && typeof pkg.version === "string" ? pkg.version : "unknown";
  }
  return cached;
}
