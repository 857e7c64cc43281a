/**
 * The daemon process when it cannot listen where its flags say: exit 2 and
 * exactly one line on stderr naming the address and the flag to change,
 * with nothing before it (no grpc-js or log line) and nothing on stdout.
 */
import { createServer, type Server } from "node:net";

import { expect } from "chai";

import { killDaemons, spawnDaemon } from "../helpers/daemon-process.js";

describe("the daemon process, when it cannot listen", function () {
  // Each start compiles the TypeScript sources through tsx.
  this.timeout(30_000);

  let taken: Server;
  let port: number;

  before(async () => {
    taken = createServer();
    await new Promise<void>((resolve, reject) => {
      taken.once("error", reject);
      taken.listen(0, "127.0.0.1", resolve);
    });
    port = (taken.address() as { port: number }).port;
  });

  after(async () => {
    killDaemons();
    await new Promise((resolve) => taken.close(resolve));
  });

  const cases: [string, () => string[], () => string][] = [
    [
      "--listen on a port in use",
      () => ["--listen", `127.0.0.1:${port}`],
      () =>
        `session-registry: port 127.0.0.1:${port} is in use (another process listens on it); stop that process or choose another --listen\n`,
    ],
    [
      "--metrics-listen on a port in use",
      () => ["--listen", "127.0.0.1:0", "--metrics-listen", `127.0.0.1:${port}`],
      () =>
        `session-registry: port 127.0.0.1:${port} is in use (another process listens on it); stop that process or choose another --metrics-listen\n`,
    ],
    [
      "--listen on an address this machine does not have",
      () => ["--listen", "192.0.2.1:0", "--insecure"],
      () =>
        "session-registry: cannot listen on 192.0.2.1:0: no network interface of this machine has that address; choose another --listen\n",
    ],
  ];
  for (const [label, args, expected] of cases) {
    it(`exits 2 with one line, and no line before it, for ${label}`, async () => {
      const d = spawnDaemon(args());
      const { code } = await d.exited;
      expect(d.stderr()).to.equal(expected());
      expect(code, d.stderr()).to.equal(2);
      expect(d.stdout()).to.equal("");
    });
  }
});
