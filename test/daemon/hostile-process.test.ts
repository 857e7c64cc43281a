/**
 * Half-sent requests and silent connections against a daemon process, at a
 * scale that runs in seconds: the daemon stays up, its resident memory grows
 * by less than a stated bound, and a well-behaved client on a connection of
 * its own is answered throughout. (test/daemon/hostile.test.ts checks each
 * rule behind this one by one, in process.)
 *
 * Waits are bounded and wait for a condition; nothing asserts a duration.
 */
import { connect as connectHttp2, type ClientHttp2Session } from "node:http2";
import { connect as connectTcp, type Socket } from "node:net";
import { readdirSync } from "node:fs";

import { expect } from "chai";
import { credentials, Metadata, status } from "@grpc/grpc-js";
import { Session, SessionRegistryClient as GeneratedClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { DEFAULT_CONFIG } from "../../src/daemon/config.js";
import { eventually } from "../helpers/daemon.js";
import { halfSentCall } from "../helpers/h2.js";
import { killDaemons, Probe, rssOf, spawnDaemon, waitForPort, type DaemonProcess } from "../helpers/daemon-process.js";

const MIB = 1024 * 1024;

function lookup(client: GeneratedClient, id: string): Promise<number> {
  return new Promise((resolve) =>
    client.lookup({ table: "", key: { $case: "id", value: id } }, new Metadata(), { deadline: Date.now() + 5000 }, (err) =>
      resolve(err?.code ?? status.OK),
    ),
  );
}

/** Starts a daemon process with a session "probe" in its default table, and a Probe looking it up. */
async function startWithProbe(
  args: string[],
  openFiles?: number,
): Promise<{ proc: DaemonProcess; address: string; port: number; probe: Probe }> {
  const proc = spawnDaemon(["--listen", "127.0.0.1:0", "--log-level", "error", ...args], [], openFiles);
  const port = await waitForPort(proc);
  const address = `127.0.0.1:${port}`;
  const setup = new GeneratedClient(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
  await new Promise<void>((resolve, reject) =>
    setup.register({ table: "", requestId: "", session: { ...Session.fromPartial({}), id: "probe", projectPath: "/probe" } }, (err) =>
      err ? reject(err) : resolve(),
    ),
  );
  setup.close();
  const probe = new Probe(address, "", "probe");
  await eventually(() => probe.answered > 0, "the probe's first answer");
  return { proc, address, port, probe };
}

describe("hostile clients against a daemon process", function () {
  this.timeout(60_000);

  const sockets: Socket[] = [];
  const sessions: ClientHttp2Session[] = [];
  after(() => {
    for (const s of sockets) s.destroy();
    for (const s of sessions) s.destroy();
    killDaemons();
  });

  it("bounds 1,000 half-sent requests just under the size limit, ends them, and answers a probe throughout", async () => {
    const { proc, address, probe } = await startWithProbe(["--request-timeout", "2s"]);
    const baseline = rssOf(proc.child.pid!)!;
    let peak = baseline;
    const sampler = setInterval(() => (peak = Math.max(peak, rssOf(proc.child.pid!) ?? peak)), 20);
    let ended = 0;
    try {
      // 10 connections x 100 streams, each announcing a message 1 byte under the limit and sending all but 1 KiB of it.
      const limit = DEFAULT_CONFIG.maxReceiveMessageBytes;
      for (let c = 0; c < 10; c++) {
        const session = connectHttp2(`http://${address}`);
        sessions.push(session);
        session.on("error", () => {});
        for (let i = 0; i < 100; i++) {
          const stream = halfSentCall(session, "/sessionregistry.v1.SessionRegistry/Register", limit - 1, limit - 1024);
          stream.on("error", () => {});
          stream.on("close", () => ended++);
        }
      }
      // Every stream is ended by the daemon: refused while too many wait, or at the request timeout with its connection.
      await eventually(() => ended === 1000, "the daemon to end every half-sent request", 30_000);
    } finally {
      clearInterval(sampler);
      await probe.stop();
    }
    expect(probe.failures).to.deep.equal([]);
    // Read slots hold 256 x 64 KiB, waiting calls 1,024 x 64 KiB of stream windows: 80 MiB, and garbage besides.
    expect(peak - baseline, `RSS grew from ${(baseline / MIB).toFixed(0)} to ${(peak / MIB).toFixed(0)} MiB`).to.be.below(160 * MIB);
    expect(proc.child.exitCode).to.equal(null);
  });

  it("keeps serving new clients under an open-file limit of 256 while 300 silent connections arrive", async () => {
    // --max-connections defaults to the open-file limit less 128: 128 here.
    const { proc, address, port, probe } = await startWithProbe([], 256);
    try {
      for (let i = 0; i < 300; i++) {
        const s = connectTcp(port, "127.0.0.1");
        s.on("error", () => {});
        // Read (and drop) the daemon's SETTINGS: a socket not read never sees its end.
        s.resume();
        sockets.push(s);
      }
      await eventually(() => sockets.filter((s) => s.readyState === "open").length >= 100, "the silent connections to be accepted");
      // A new client gets in: the oldest silent connection makes room for it.
      const client = new GeneratedClient(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
      try {
        expect(await lookup(client, "probe")).to.equal(status.OK);
      } finally {
        client.close();
      }
      // The daemon never came near the open-file limit.
      expect(readdirSync(`/proc/${proc.child.pid}/fd`).length).to.be.below(256);
    } finally {
      await probe.stop();
    }
    expect(probe.failures).to.deep.equal([]);
    expect(proc.child.exitCode).to.equal(null);
  });
});
