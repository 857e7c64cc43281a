/**
 * What people see while etcd is down, through the real processes: the
 * daemon's ready line and logs say NOT_SERVING and why, then SERVING once
 * etcd is back; the CLI tells the store's outage apart from a daemon it
 * cannot reach; and nothing on the way (etcd3's circuit breaker, grpc-js's
 * status text) leaks its own words to a client, a CLI user or the logs.
 */
import { expect } from "chai";
import { SessionRegistryClient, SessionRegistryError, status } from "@session-registry/client";

import { eventually } from "../helpers/daemon.js";
import { killDaemons, LISTENING, spawnDaemon, waitForPort, type DaemonProcess } from "../helpers/daemon-process.js";
import { suiteEtcd, uniquePrefix } from "../helpers/etcd.js";
import { killLeftoverClis, runCli, summary, type CliResult } from "../cli/cli-process.js";

/** Words of etcd3, cockatiel and grpc-js that must never reach a person. */
const INTERNALS =
  /circuit breaker|Execution prevented|BrokenCircuit|\d+ UNAVAILABLE:|No connection established|Last error|Resolution note|ECONNREFUSED|GRPC\w*Error/;

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
}

/** The JSON log lines of a daemon's stderr. */
function logs(d: DaemonProcess): Record<string, unknown>[] {
  return d
    .stderr()
    .split("\n")
    .filter((l) => l.startsWith("{"))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}

describe("etcd down: what users see", function () {
  this.timeout(120_000);
  const clients: SessionRegistryClient[] = [];

  after(() => {
    for (const c of clients.splice(0)) c.close();
    killLeftoverClis();
    killDaemons();
  });
  // Its hooks come after the one above, so that etcd stops once the daemons are gone.
  const etcd = suiteEtcd();

  function daemon(): DaemonProcess {
    return spawnDaemon([
      "--listen",
      "127.0.0.1:0",
      "--store",
      "etcd",
      "--etcd-endpoints",
      etcd().endpoint,
      "--etcd-prefix",
      uniquePrefix(),
    ]);
  }

  /** The CLI's one line for a store outage; `why` is what etcd did. */
  function storeOutage(addr: string, why: string): RegExp {
    return new RegExp(
      `^The registry's store \\(etcd at ${escape(etcd().endpoint)}\\) is unavailable: etcd ${why}` +
        `(; after repeated failures the daemon tries again within 5 s)?\\. ` +
        `The registry at ${escape(addr)} is up; try again once etcd is back\\.\\n$`,
    );
  }

  it("prints a ready line and a log line saying NOT_SERVING and why, then logs SERVING once etcd is back", async () => {
    etcd().kill9();
    const d = daemon();
    const port = await waitForPort(d);
    const addr = `127.0.0.1:${port}`;
    const lines = d
      .stdout()
      .split("\n")
      .filter((l) => l !== "");
    expect(lines).to.deep.equal([
      `session-registry listening on ${addr} (store: etcd (${etcd().endpoint}), max-sessions: 10, security: plaintext, auth: none, ` +
        `metrics: off, health: NOT_SERVING because etcd at ${etcd().endpoint} is unreachable (connection refused))`,
    ]);
    // Scripts read the port with the same pattern as from a healthy ready line.
    expect(LISTENING.exec(lines[0]!)?.[1]).to.equal(String(port));
    const down = logs(d).find((l) => l.health === "NOT_SERVING");
    expect(down, d.stderr()).to.include({
      level: "warn",
      why: `etcd at ${etcd().endpoint} is unreachable (connection refused)`,
      msg: "the store is unavailable at start-up; health reports NOT_SERVING until it is back",
    });

    const outage = await runCli(["get-table", "--addr", addr]);
    expect(outage.code, summary(outage)).to.equal(8);
    expect(outage.stderr).to.match(storeOutage(addr, "is unreachable \\(connection refused\\)"));

    await etcd().restart();
    await eventually(() => logs(d).some((l) => l.health === "SERVING"), "the daemon to log SERVING", 60_000);
    expect(logs(d).find((l) => l.health === "SERVING")).to.include({
      level: "info",
      msg: "the store is reachable again; health reports SERVING",
    });
    const served = await runCli(["get-table", "--addr", addr]);
    expect(served.code, summary(served)).to.equal(0);
    expect(d.stderr()).to.not.match(INTERNALS);

    d.child.kill("SIGTERM");
    expect((await d.exited).code, d.stderr()).to.equal(0);
  });

  it("says what failed and where, in its own words, when etcd stops mid-run and etcd3's circuit breaker opens", async () => {
    // Serving, whatever the test before left behind.
    await etcd().restart();
    const d = daemon();
    const port = await waitForPort(d);
    const addr = `127.0.0.1:${port}`;
    expect(d.stdout()).to.not.include("NOT_SERVING");
    const ok = await runCli(["register", "--path", "/work/before", "--addr", addr]);
    expect(ok.code, summary(ok)).to.equal(0);

    etcd().kill9();
    // Calls until one meets the open breaker (3 failures in a row open it; health checks count too).
    const expected = storeOutage(addr, "(is unreachable \\((connection refused|the connection was lost)\\)|did not answer in time)");
    await eventually(
      async () => {
        const r: CliResult = await runCli(["get-table", "--addr", addr]);
        expect(r.code, summary(r)).to.equal(8);
        expect(r.stdout).to.equal("");
        expect(r.stderr).to.not.match(INTERNALS);
        expect(r.stderr).to.match(expected);
        return /after repeated failures/.test(r.stderr);
      },
      "a call to meet the open circuit breaker",
      60_000,
    );

    // An SDK client gets the same words, and the store's kind and endpoints as metadata.
    const client = new SessionRegistryClient(addr, { retry: false });
    clients.push(client);
    const err = await client.getTable().then(
      () => expect.fail("getTable should fail while etcd is down"),
      (e: unknown) => e as SessionRegistryError,
    );
    expect(err).to.be.instanceOf(SessionRegistryError);
    expect({ code: err.code, reason: err.reason, metadata: err.metadata }).to.deep.equal({
      code: status.UNAVAILABLE,
      reason: "STORE_UNAVAILABLE",
      metadata: { store: "etcd", endpoints: etcd().endpoint },
    });
    expect(err.details).to.match(
      new RegExp(`^the session store is unavailable: etcd at ${escape(etcd().endpoint)} is unreachable \\(connection refused\\)`),
    );
    expect(err.details).to.not.match(INTERNALS);

    // The daemon's health report says why, in the same words.
    await eventually(() => logs(d).some((l) => l.health === "NOT_SERVING"), "the daemon to log NOT_SERVING", 30_000);
    expect(logs(d).find((l) => l.health === "NOT_SERVING")).to.include({
      level: "warn",
      msg: "the store is unavailable; health reports NOT_SERVING until it is back",
    });
    expect(String(logs(d).find((l) => l.health === "NOT_SERVING")!.why)).to.match(new RegExp(`^etcd at ${escape(etcd().endpoint)} `));
    expect(d.stderr()).to.not.match(INTERNALS);

    await etcd().restart();
    d.child.kill("SIGTERM");
    expect((await d.exited).code, d.stderr()).to.equal(0);
  });
});
