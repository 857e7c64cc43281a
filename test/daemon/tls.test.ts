/**
 * TLS (--tls-cert, --tls-key) and mTLS (--tls-client-ca) on real daemons,
 * with certificates that openssl makes at test time (see certs.ts), and
 * start-up's checks of the files.
 */
import { expect } from "chai";
import { credentials, status } from "@grpc/grpc-js";
import { SessionRegistryError } from "@session-registry/client";

import { ConfigError, DEFAULT_CONFIG, type DaemonConfig } from "../../src/daemon/config.js";
import { silentLogger } from "../../src/daemon/logger.js";
import { startDaemon } from "../../src/daemon/server.js";
import { expectError, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { makeTestCerts, type TestCerts } from "./certs.js";
import { HealthClient } from "./health-client.js";

/** A client that fails answers within this; a hung handshake shows as DEADLINE_EXCEEDED, not a mocha timeout. */
const FAIL_FAST = { timeoutMs: 5_000 };

/**
 * Names the server "localhost" in the handshake (the certificate has both
 * names): Node warns when TLS's server name is an IP address, as it would be
 * for 127.0.0.1.
 */
const SERVER_NAME = { channelOptions: { "grpc.ssl_target_name_override": "localhost", "grpc.default_authority": "localhost" } };

describe("TLS", function () {
  // openssl makes five keys and certificates.
  this.timeout(30_000);

  let certs: TestCerts;
  let daemon: TestDaemon | undefined;

  before(async () => {
    certs = await makeTestCerts();
  });

  after(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    await certs?.remove();
  });

  afterEach(async () => {
    await daemon?.stop();
    daemon = undefined;
  });

  function tlsConfig(extra: Partial<DaemonConfig> = {}): Partial<DaemonConfig> {
    return { tlsCert: certs.server.certPath, tlsKey: certs.server.keyPath, ...extra };
  }

  /** The UNAVAILABLE (or other) error of a call that must fail. */
  async function failure(call: Promise<unknown>): Promise<SessionRegistryError> {
    return expectError(call, SessionRegistryError);
  }

  describe("with --tls-cert and --tls-key", () => {
    beforeEach(async () => {
      daemon = await startTestDaemon({ config: tlsConfig() });
    });

    it("serves a client that trusts the CA", async () => {
      expect(daemon!.daemon.security).to.equal("tls");
      const client = daemon!.client({ ...SERVER_NAME, credentials: credentials.createSsl(certs.ca.cert) });
      expect((await client.getTable()).name).to.equal("default");
      const health = new HealthClient(daemon!.address, credentials.createSsl(certs.ca.cert), SERVER_NAME.channelOptions);
      try {
        expect(await health.check("")).to.equal("SERVING");
      } finally {
        health.close();
      }
    });

    it("refuses a plaintext client", async () => {
      const client = daemon!.client(FAIL_FAST);
      expect((await failure(client.getTable())).code).to.equal(status.UNAVAILABLE);
    });

    it("is refused by a client that trusts another CA", async () => {
      const client = daemon!.client({ ...FAIL_FAST, ...SERVER_NAME, credentials: credentials.createSsl(certs.otherCa.cert) });
      expect((await failure(client.getTable())).code).to.equal(status.UNAVAILABLE);
    });
  });

  describe("with --tls-client-ca (mTLS)", () => {
    beforeEach(async () => {
      daemon = await startTestDaemon({ config: tlsConfig({ tlsClientCa: certs.ca.certPath }) });
    });

    it("serves a client whose certificate the CA signed", async () => {
      expect(daemon!.daemon.security).to.equal("mtls");
      const client = daemon!.client({
        ...SERVER_NAME,
        credentials: credentials.createSsl(certs.ca.cert, certs.client.key, certs.client.cert),
      });
      expect((await client.getTable()).name).to.equal("default");
    });

    it("refuses a client without a certificate", async () => {
      const client = daemon!.client({ ...FAIL_FAST, ...SERVER_NAME, credentials: credentials.createSsl(certs.ca.cert) });
      expect((await failure(client.getTable())).code).to.equal(status.UNAVAILABLE);
    });

    it("refuses a client whose certificate another CA signed", async () => {
      const client = daemon!.client({
        ...FAIL_FAST,
        ...SERVER_NAME,
        credentials: credentials.createSsl(certs.ca.cert, certs.otherClient.key, certs.otherClient.cert),
      });
      expect((await failure(client.getTable())).code).to.equal(status.UNAVAILABLE);
    });

    it("refuses a plaintext client", async () => {
      const client = daemon!.client(FAIL_FAST);
      expect((await failure(client.getTable())).code).to.equal(status.UNAVAILABLE);
    });
  });

  describe("files that do not do", () => {
    const cases: { label: string; config: () => Partial<DaemonConfig>; message: RegExp }[] = [
      {
        label: "a certificate file that does not exist",
        config: () => tlsConfig({ tlsCert: `${certs.dir}/missing.crt` }),
        message: /^cannot read --tls-cert .*missing\.crt: no such file$/,
      },
      {
        label: "a key file that is a directory",
        config: () => tlsConfig({ tlsKey: certs.dir }),
        message: /^cannot read --tls-key .*: it is a directory$/,
      },
      {
        label: "a certificate file that holds a key",
        config: () => tlsConfig({ tlsCert: certs.server.keyPath }),
        message: /^--tls-cert .*server\.key does not hold a PEM certificate/,
      },
      {
        label: "a key file that holds a certificate",
        config: () => tlsConfig({ tlsKey: certs.server.certPath }),
        message: /^--tls-key .*server\.crt does not hold a PEM private key/,
      },
      {
        label: "the key of another certificate",
        config: () => tlsConfig({ tlsKey: certs.client.keyPath }),
        message: /^--tls-key .*client\.key is not the private key of the certificate in --tls-cert .*server\.crt$/,
      },
      {
        label: "a client CA file that holds a key",
        config: () => tlsConfig({ tlsClientCa: certs.ca.keyPath }),
        message: /^--tls-client-ca .*ca\.key does not hold a PEM CA certificate/,
      },
      {
        label: "a client CA file that does not exist",
        config: () => tlsConfig({ tlsClientCa: `${certs.dir}/nope.crt` }),
        message: /^cannot read --tls-client-ca .*nope\.crt: no such file$/,
      },
    ];
    for (const { label, config, message } of cases) {
      it(`refuses to start with ${label}`, async () => {
        const start = startDaemon(
          { ...DEFAULT_CONFIG, logLevel: "silent", ...config(), listen: "127.0.0.1:0", httpListen: undefined },
          { logger: silentLogger },
        );
        const err = await expectError(start, ConfigError);
        expect(err.message).to.match(message);
      });
    }
  });
});
