/**
 * TLS mismatches between the real CLI and real daemon processes: each gets
 * one line on stderr saying what is wrong and which flag fixes it, with exit
 * code 8 (cannot reach the daemon), and no OpenSSL or grpc-js text. The
 * daemons log nothing for the refused handshakes.
 */
import { expect } from "chai";

import { makeTestCerts, type TestCerts } from "../daemon/certs.js";
import { killDaemons, spawnDaemon, waitForPort, type DaemonProcess } from "../helpers/daemon-process.js";
import { killLeftoverClis, runCli, summary } from "./cli-process.js";

/** Text of OpenSSL's or grpc-js's that must not reach a user. */
const INTERNALS = /SSL routines|:error:[0-9A-F]+:|ssl3_|Failed to connect|No connection established|ERR_TLS|altnames:/;

describe("CLI: TLS mismatches", function () {
  // openssl makes the certificates; three daemons start.
  this.timeout(60_000);

  let certs: TestCerts;
  const daemons: Record<"plain" | "tls" | "mtls", { process: DaemonProcess; addr: string }> = {} as never;

  before(async () => {
    certs = await makeTestCerts();
    const quiet = ["--listen", "127.0.0.1:0", "--log-level", "warn"];
    const tls = ["--tls-cert", certs.server.certPath, "--tls-key", certs.server.keyPath];
    const started = {
      plain: spawnDaemon(quiet),
      tls: spawnDaemon([...quiet, ...tls]),
      mtls: spawnDaemon([...quiet, ...tls, "--tls-client-ca", certs.ca.certPath]),
    };
    for (const [name, process] of Object.entries(started)) {
      daemons[name as keyof typeof daemons] = { process, addr: `127.0.0.1:${await waitForPort(process)}` };
    }
  });

  after(async () => {
    killLeftoverClis();
    for (const { process } of Object.values(daemons)) {
      process.child.kill("SIGTERM");
      await process.exited;
    }
    killDaemons();
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    await certs?.remove();
  });

  const cases: [string, keyof typeof daemons, () => string[], string][] = [
    [
      "a plaintext CLI to a TLS daemon",
      "tls",
      () => [],
      "it serves TLS, and this call was plaintext; pass --tls-ca FILE (the CA that signed its certificate), or --tls if a public CA did.",
    ],
    [
      "a plaintext CLI to an mTLS daemon",
      "mtls",
      () => [],
      "it serves TLS and requires a client certificate, and this call was plaintext; pass --tls-ca FILE, --tls-cert FILE and --tls-key FILE.",
    ],
    [
      "a TLS CLI to a plaintext daemon",
      "plain",
      () => ["--tls-ca", certs.ca.certPath],
      "it serves plaintext, not TLS; leave out --tls, --tls-ca, --tls-cert and --tls-key (or start the daemon with --tls-cert and --tls-key).",
    ],
    [
      "a daemon certificate no system CA signed (--tls)",
      "tls",
      () => ["--tls"],
      "its certificate is not signed by a CA this system trusts; pass the CA that signed it with --tls-ca FILE.",
    ],
    [
      "a daemon certificate the CA in --tls-ca did not sign",
      "tls",
      () => ["--tls-ca", certs.otherCa.certPath],
      "its certificate is not signed by the CA in --tls-ca; pass the CA that signed the daemon's --tls-cert.",
    ],
    [
      "a daemon certificate for another name",
      "tls",
      () => ["--tls-ca", certs.ca.certPath, "--tls-server-name", "registry.example"],
      "its certificate is not for registry.example (it carries IP Address:127.0.0.1, DNS:localhost); connect by a name it carries, or pass --tls-server-name NAME.",
    ],
    [
      "no client certificate to an mTLS daemon",
      "mtls",
      () => ["--tls-ca", certs.ca.certPath],
      "it requires a client certificate (mTLS); pass --tls-cert FILE and --tls-key FILE.",
    ],
    [
      "a client certificate of another CA to an mTLS daemon",
      "mtls",
      () => ["--tls-ca", certs.ca.certPath, "--tls-cert", certs.otherClient.certPath, "--tls-key", certs.otherClient.keyPath],
      "it closed the connection right after the TLS handshake, as it does for a client certificate it does not trust: " +
        "the CA it trusts (its --tls-client-ca) did not sign the one in --tls-cert.",
    ],
  ];

  for (const [label, target, flags, hint] of cases) {
    it(`names ${label} in one line, with exit code 8`, async () => {
      const { addr } = daemons[target];
      const r = await runCli(["tables", "--addr", addr, "--timeout", "5s", ...flags()]);
      expect(r.stdout, summary(r)).to.equal("");
      expect(r.stderr, summary(r)).to.equal(`Cannot reach the registry at ${addr}: ${hint}\n`);
      expect(r.code, summary(r)).to.equal(8);
    });
  }

  it("gives the same hint as JSON with --json, without grpc-js's text", async () => {
    const { addr } = daemons.mtls;
    const r = await runCli(["tables", "--addr", addr, "--timeout", "5s", "--json", "--tls-ca", certs.ca.certPath]);
    expect(r.code, summary(r)).to.equal(8);
    const { error } = JSON.parse(r.stderr) as { error: Record<string, unknown> };
    expect(error).to.deep.equal({
      code: "UNAVAILABLE",
      reason: "",
      message: `Cannot reach the registry at ${addr}: it requires a client certificate (mTLS); pass --tls-cert FILE and --tls-key FILE.`,
      metadata: {},
      exitCode: 8,
    });
    expect(r.stderr).to.not.match(INTERNALS);
  });

  it("still serves the CLI with the right flags, and the daemons logged nothing for the refused handshakes", async () => {
    const tls = await runCli(["tables", "--addr", daemons.tls.addr, "--tls-ca", certs.ca.certPath]);
    expect(tls.code, summary(tls)).to.equal(0);
    const mtls = await runCli([
      "tables",
      "--addr",
      daemons.mtls.addr,
      "--tls-ca",
      certs.ca.certPath,
      "--tls-cert",
      certs.client.certPath,
      "--tls-key",
      certs.client.keyPath,
    ]);
    expect(mtls.code, summary(mtls)).to.equal(0);
    // --log-level warn: nothing at all, so no OpenSSL dump either.
    for (const { process } of Object.values(daemons)) expect(process.stderr()).to.equal("");
  });
});
