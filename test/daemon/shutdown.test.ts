/**
 * Graceful shutdown on a real daemon: a unary call already running when
 * shutdown starts completes; a call that starts after it is refused; after
 * the grace, a call still running is cut off.
 * The shutdown's order as seen by health watchers is in health.test.ts, and
 * how open watches end is in test/transport/watch-stream.test.ts.
 */
import { expect } from "chai";
import { status } from "@grpc/grpc-js";
import { SessionRegistryClient, SessionRegistryError } from "@session-registry/client";

import { GatedStore } from "../helpers/gated-store.js";
import { expectError, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { HealthClient } from "./health-client.js";

describe("graceful shutdown", () => {
  let store: GatedStore;
  let daemon: TestDaemon;
  const clients: { close(): void }[] = [];

  beforeEach(async () => {
    store = new GatedStore({ defaultMaxSessions: 10, maxTables: 100, watchHistory: 100 });
    // A grace past mocha's timeout: the in-flight call must finish on its own, not be cut off.
    daemon = await startTestDaemon({ store, config: { shutdownGraceMs: 600_000 } });
  });

  afterEach(async () => {
    store.release();
    for (const c of clients.splice(0)) c.close();
    await daemon.stop();
  });

  it("lets a running unary call finish and refuses calls that start later", async () => {
    const client = daemon.client();
    const entered = store.hold();
    const registering = client.register({ projectPath: "/work/in-flight" });
    await entered;

    const stopping = daemon.daemon.shutdown();
    let stopped = false;
    void stopping.then(() => (stopped = true));

    // A new connection is refused: the daemon no longer listens. (A local
    // subchannel pool makes this client open its own connection rather than
    // share the one grpc-js keeps for the address.)
    const late = new SessionRegistryClient(daemon.address, { channelOptions: { "grpc.use_local_subchannel_pool": 1 } });
    clients.push(late);
    const refused = await expectError(late.getTable(), SessionRegistryError);
    expect(refused.code).to.equal(status.UNAVAILABLE);
    // And so is a new call on the connection that carries the running one (it got GOAWAY).
    const refusedToo = await expectError(client.getTable(), SessionRegistryError);
    expect(refusedToo.code).to.equal(status.UNAVAILABLE);
    // Health is refused too: the whole server takes no new calls.
    const health = new HealthClient(daemon.address);
    clients.push(health);
    await health.check("").then(
      () => expect.fail("Check succeeded after shutdown started"),
      (err: unknown) => expect(err).to.have.property("code", status.UNAVAILABLE),
    );

    expect(stopped, "shutdown finished while a call was running").to.equal(false);
    store.release();
    const session = await registering;
    expect(session.projectPath).to.equal("/work/in-flight");
    await stopping;
  });

  it("cuts off a call still running when the grace is over, and finishes", async () => {
    const client = daemon.client();
    const entered = store.hold();
    const registering = client.register({ projectPath: "/work/cut-off" });
    await entered;

    // A grace of 0: forced at once; shutdown must settle although the call never finished.
    await daemon.daemon.shutdown(0);
    const err = await expectError(registering, SessionRegistryError);
    // grpc-js resets the stream (CANCELLED); a connection torn down first would read UNAVAILABLE.
    expect([status.CANCELLED, status.UNAVAILABLE], String(err)).to.include(err.code);
    // The held call now runs into a closed store and a dead stream; nothing may crash.
    store.release();
  });
});
