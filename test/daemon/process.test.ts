/**
 * The daemon as a process: what scripts rely on (one stdout line with the
 * port, clean exit on SIGTERM and SIGINT, a non-zero exit naming a bad flag).
 */
import { expect } from "chai";
import { SessionRegistryClient } from "@session-registry/client";

import { killDaemons, LISTENING, spawnDaemon, waitForPort } from "../helpers/daemon-process.js";

describe("the daemon process", function () {
  // Each start compiles the TypeScript sources through tsx.
  this.timeout(30_000);

  const clients: SessionRegistryClient[] = [];

  afterEach(() => {
    for (const c of clients.splice(0)) c.close();
  });

  after(() => killDaemons());

  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    it(`prints one listening line, serves the default table and exits 0 on ${signal}`, async () => {
      const d = spawnDaemon(["--listen", "127.0.0.1:0"]);
      const port = await waitForPort(d);
      expect(port).to.be.greaterThan(0);

      const client = new SessionRegistryClient(`127.0.0.1:${port}`);
      clients.push(client);
      const table = await client.getTable("default");
      expect(table.name).to.equal("default");
      expect(table.maxSessions).to.equal(10);
      client.close();

      d.child.kill(signal);
      const { code, signal: bySignal } = await d.exited;
      expect(bySignal, d.stderr()).to.equal(null);
      expect(code, d.stderr()).to.equal(0);
      const lines = d
        .stdout()
        .split("\n")
        .filter((l) => l !== "");
      expect(lines).to.have.length(1);
      expect(lines[0]).to.match(LISTENING);
      expect(lines[0]).to.match(/^session-registry listening on 127\.0\.0\.1:\d+/);
    });
  }

  const badFlags: [string, string[], RegExp][] = [
    ["--max-sessions abc", ["--max-sessions", "abc"], /max-sessions/],
    ["--bogus", ["--bogus"], /bogus/],
    // Safe defaults: checked before anything binds, so 0.0.0.0 is never listened on here.
    [
      "a non-loopback --listen in plaintext",
      ["--listen", "0.0.0.0:0"],
      /^session-registry: refusing to listen on 0\.0\.0\.0:0 in plaintext: .*anyone who can reach it could list, register and remove sessions.*--insecure to accept the risk\n/,
    ],
    [
      "a TLS certificate that does not exist",
      ["--tls-cert", "/nonexistent/s.crt", "--tls-key", "/nonexistent/s.key"],
      /cannot read --tls-cert \/nonexistent\/s\.crt: no such file/,
    ],
  ];
  for (const [label, args, named] of badFlags) {
    it(`exits 2 naming the flag, without listening, when given ${label}`, async () => {
      const d = spawnDaemon(["--listen", "127.0.0.1:0", ...args]);
      const { code } = await d.exited;
      expect(code, d.stderr()).to.equal(2);
      expect(d.stderr()).to.match(named);
      expect(d.stdout()).to.not.match(/listening/);
    });
  }
});
