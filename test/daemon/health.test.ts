/**
 * grpc.health.v1.Health on a real daemon: Check and Watch for the daemon
 * ("") and the registry service, NOT_FOUND for other names, and NOT_SERVING
 * as the first step of shutdown.
 */
import { expect } from "chai";
import { status, type ServiceError } from "@grpc/grpc-js";

import { REGISTRY_SERVICE_NAME } from "../../src/daemon/health.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { HealthClient } from "./health-client.js";

describe("Health checking", () => {
  let daemon: TestDaemon;
  let client: HealthClient;

  beforeEach(async () => {
    // A grace far past mocha's timeout: a stream that held shutdown would fail the test rather than wait it out.
    daemon = await startTestDaemon({ config: { shutdownGraceMs: 600_000 } });
    client = new HealthClient(daemon.address);
  });

  afterEach(async () => {
    client.close();
    await daemon.stop();
  });

  describe("check", () => {
    for (const name of ["", REGISTRY_SERVICE_NAME]) {
      it(`says ${JSON.stringify(name)} is SERVING`, async () => {
        expect(await client.check(name)).to.equal("SERVING");
      });
    }

    it("answers NOT_FOUND for a service it does not know", async () => {
      const err = (await client.check("no.such.Service").then(
        () => expect.fail("Check succeeded"),
        (e: unknown) => e,
      )) as ServiceError;
      expect(err.code).to.equal(status.NOT_FOUND);
      expect(err.details).to.include("no.such.Service");
    });
  });

  describe("watch", () => {
    it("sends the current status of the registry service", async () => {
      const watch = client.watch(REGISTRY_SERVICE_NAME);
      await watch.until(() => watch.statuses.length >= 1, "the first status");
      expect(watch.statuses).to.deep.equal(["SERVING"]);
      watch.call.cancel();
    });

    it("sends SERVICE_UNKNOWN for a service it does not know", async () => {
      const watch = client.watch("no.such.Service");
      await watch.until(() => watch.statuses.length >= 1, "the first status");
      expect(watch.statuses).to.deep.equal(["SERVICE_UNKNOWN"]);
      watch.call.cancel();
    });

    it("sees SERVING, then NOT_SERVING when shutdown starts, then ends with UNAVAILABLE", async () => {
      const watches = ["", REGISTRY_SERVICE_NAME].map((name) => client.watch(name));
      for (const w of watches) await w.until(() => w.statuses.length >= 1, "the first status");

      // Shutdown would wait out its 10-minute grace if a health watch held it.
      await daemon.daemon.shutdown();
      for (const w of watches) {
        await w.until(() => w.ended, "the end of the watch");
        expect(w.statuses).to.deep.equal(["SERVING", "NOT_SERVING"]);
        expect(w.error?.code, String(w.error)).to.equal(status.UNAVAILABLE);
      }
    });
  });
});
