/**
 * The CLI against a daemon that requires client certificates (mTLS) and
 * bearer tokens: --tls-ca/--tls-cert/--tls-key and --token (or the
 * SESSION_REGISTRY_ADDR/SESSION_REGISTRY_TOKEN variables) get through; a
 * missing token or role exits 9.
 */
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

import { expect } from "chai";

import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { makeTestCerts, type TestCerts } from "../daemon/certs.js";
import { killLeftoverClis, parseJson, runCli, summary } from "./cli-process.js";

const ADMIN_TOKEN = "admin-0123456789abcdef";
const READ_TOKEN = "read-0123456789abcdef";

describe("CLI with mTLS and tokens", function () {
  // openssl makes the certificates, then several CLI processes run.
  this.timeout(60_000);

  let certs: TestCerts;
  let d: TestDaemon;
  let tls: string[];

  before(async () => {
    certs = await makeTestCerts();
    const tokensFile = join(certs.dir, "tokens");
    await writeFile(tokensFile, `admin ${ADMIN_TOKEN}\nread ${READ_TOKEN}\n`);
    d = await startTestDaemon({
      config: {
        tlsCert: certs.server.certPath,
        tlsKey: certs.server.keyPath,
        tlsClientCa: certs.ca.certPath,
        authTokensFile: tokensFile,
      },
    });
    tls = ["--tls-ca", certs.ca.certPath, "--tls-cert", certs.client.certPath, "--tls-key", certs.client.keyPath];
  });

  after(async () => {
    killLeftoverClis();
    /* eslint-disable @typescript-eslint/no-unnecessary-condition -- each is unset if before() failed */
    await d?.stop();
    await certs?.remove();
    /* eslint-enable @typescript-eslint/no-unnecessary-condition */
  });

  it("connects with a client certificate and a token, from flags or from the environment", async () => {
    const [fromEnv, noToken, readOnly] = await Promise.all([
      // By name: the certificate is for 127.0.0.1 and localhost.
      runCli(["create-table", "secure", "--json", "--tls-server-name", "localhost", ...tls], {
        env: { SESSION_REGISTRY_ADDR: d.address, SESSION_REGISTRY_TOKEN: ADMIN_TOKEN },
      }),
      runCli(["tables", "--addr", d.address, ...tls]),
      runCli(["create-table", "other", "--addr", d.address, "--token", READ_TOKEN, ...tls]),
    ]);

    expect(fromEnv.code, summary(fromEnv)).to.equal(0);
    expect(fromEnv.stderr).to.equal("");
    expect(parseJson(fromEnv)).to.deep.include({ created: true });

    expect(noToken.code, summary(noToken)).to.equal(9);
    expect(noToken.stderr).to.match(/^Not authenticated: .+\. Pass a token with --token or SESSION_REGISTRY_TOKEN\.\n$/);

    expect(readOnly.code, summary(readOnly)).to.equal(9);
    expect(readOnly.stderr).to.match(/^Permission denied: .+\.\n$/);
    expect(readOnly.stderr).to.not.include(READ_TOKEN);
  });
});
