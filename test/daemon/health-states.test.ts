/**
 * DaemonHealth on a bare grpc-js server (127.0.0.1:0), driven through its
 * public API the way the daemon drives it (store availability, shutdown),
 * and read by grpc-health-check's client: List, Check and Watch follow the
 * store, shutdown's NOT_SERVING is final, a Watch hears only changes, and
 * one that starts after the watches were ended is ended at once.
 */
import { Server, ServerCredentials, status } from "@grpc/grpc-js";
import { expect } from "chai";

import { DaemonHealth, REGISTRY_SERVICE_NAME } from "../../src/daemon/health.js";
import { HealthClient } from "./health-client.js";

describe("DaemonHealth", () => {
  let server: Server;
  let health: DaemonHealth;
  let client: HealthClient;

  beforeEach(async () => {
    server = new Server();
    health = new DaemonHealth();
    health.addToServer(server);
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    client = new HealthClient(`127.0.0.1:${port}`);
  });

  afterEach(async () => {
    client.close();
    // Open Watch streams would hold tryShutdown: end them as the daemon's shutdown does.
    health.endWatches();
    await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
  });

  describe("list", () => {
    it("gives both names with their status", async () => {
      expect(await client.list()).to.deep.equal({ "": "SERVING", [REGISTRY_SERVICE_NAME]: "SERVING" });
      health.setStoreAvailable(false);
      expect(await client.list()).to.deep.equal({ "": "NOT_SERVING", [REGISTRY_SERVICE_NAME]: "NOT_SERVING" });
    });
  });

  describe("with a store that comes and goes", () => {
    it("checks NOT_SERVING while the store is unreachable and SERVING when it returns", async () => {
      health.setStoreAvailable(false);
      expect(await client.check("")).to.equal("NOT_SERVING");
      expect(await client.check(REGISTRY_SERVICE_NAME)).to.equal("NOT_SERVING");
      health.setStoreAvailable(true);
      expect(await client.check("")).to.equal("SERVING");
      expect(await client.check(REGISTRY_SERVICE_NAME)).to.equal("SERVING");
    });

    it("sends a watcher each change once, not each report", async () => {
      const watch = client.watch(REGISTRY_SERVICE_NAME);
      await watch.until(() => watch.statuses.length >= 1, "the first status");
      health.setStoreAvailable(false);
      health.setStoreAvailable(false);
      health.setStoreAvailable(true);
      health.setStoreAvailable(true);
      health.setStoreAvailable(false);
      // Messages arrive in order: a repeated status would come before the last one.
      await watch.until(() => watch.statuses.length >= 4, "four statuses");
      expect(watch.statuses).to.deep.equal(["SERVING", "NOT_SERVING", "SERVING", "NOT_SERVING"]);
      watch.call.cancel();
    });

    it("leaves a watcher of an unknown name at SERVICE_UNKNOWN", async () => {
      const unknown = client.watch("no.such.Service");
      const known = client.watch("");
      await unknown.until(() => unknown.statuses.length >= 1, "the first status");
      health.setStoreAvailable(false);
      await known.until(() => known.statuses.length >= 2, "NOT_SERVING");
      health.setNotServing();
      health.endWatches();
      await unknown.until(() => unknown.ended, "the end of the watch");
      expect(unknown.statuses).to.deep.equal(["SERVICE_UNKNOWN"]);
      expect(unknown.error?.code).to.equal(status.UNAVAILABLE);
      await known.until(() => known.ended, "the end of the watch");
    });

    it("gives a watcher that falls behind the latest status, not a backlog", async () => {
      const watch = client.watch("");
      await watch.until(() => watch.statuses.length >= 1, "the first status");
      // Far more changes in one turn of the event loop than a stream buffers.
      for (let i = 0; i < 1000; i++) health.setStoreAvailable(i % 2 === 1);
      await watch.until(() => watch.statuses.at(-1) === "SERVING" && watch.statuses.length > 2, "the last status");
      health.endWatches();
      await watch.until(() => watch.ended, "the end of the watch");
      expect(watch.statuses.at(-1)).to.equal("SERVING");
      expect(watch.statuses.length).to.be.lessThan(100);
      for (let i = 1; i < watch.statuses.length; i++) expect(watch.statuses[i]).to.not.equal(watch.statuses[i - 1]);
    });
  });

  describe("shutdown", () => {
    it("tells a watcher that fell behind NOT_SERVING before ending it", async () => {
      const watch = client.watch("");
      await watch.until(() => watch.statuses.length >= 1, "the first status");
      for (let i = 0; i < 1000; i++) health.setStoreAvailable(i % 2 === 1);
      // As the daemon's shutdown does, in the same turn: the stream is still full of the changes above.
      health.setNotServing();
      health.endWatches();
      await watch.until(() => watch.ended, "the end of the watch");
      expect(watch.statuses.at(-1)).to.equal("NOT_SERVING");
      expect(watch.error?.code).to.equal(status.UNAVAILABLE);
    });

    it("keeps NOT_SERVING when the store returns after shutdown started", async () => {
      const watch = client.watch("");
      await watch.until(() => watch.statuses.length >= 1, "the first status");
      health.setNotServing();
      health.setStoreAvailable(false);
      health.setStoreAvailable(true);
      expect(await client.check("")).to.equal("NOT_SERVING");
      health.endWatches();
      await watch.until(() => watch.ended, "the end of the watch");
      expect(watch.statuses).to.deep.equal(["SERVING", "NOT_SERVING"]);
    });

    it("ends a Watch that starts after the watches were ended, right after its status", async () => {
      health.setNotServing();
      health.endWatches();
      const watch = client.watch(REGISTRY_SERVICE_NAME);
      await watch.until(() => watch.ended, "the end of the watch");
      expect(watch.statuses).to.deep.equal(["NOT_SERVING"]);
      expect(watch.error?.code).to.equal(status.UNAVAILABLE);
      expect(watch.error?.details).to.equal("the daemon is shutting down");
    });
  });
});
