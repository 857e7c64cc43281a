/**
 * The store-independent suites against a real etcd: one etcd for this file
 * (Debian's etcd-server, on loopback with a temporary data dir), each store
 * under a key prefix of its own, so that stores stay as isolated as the
 * suites require.
 */
import { EtcdStore } from "../../src/store/etcd/store.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { liveConformance } from "./live-suite.js";
import { registryConformance } from "./registry-suite.js";

describe("etcd store", function () {
  // Starting etcd takes a moment (an election on a fresh data dir).
  this.timeout(30_000);
  let etcd: TestEtcd | undefined;

  before(async () => {
    etcd = await startEtcd();
  });

  after(async () => {
    await etcd?.stop();
  });

  function endpoint(): string {
    if (etcd === undefined) throw new Error("etcd is not running");
    return etcd.endpoint;
  }

  registryConformance("etcd", (limits) => new EtcdStore(limits, { endpoints: [endpoint()], prefix: uniquePrefix() }));
  liveConformance("etcd", (limits) => new EtcdStore(limits, { endpoints: [endpoint()], prefix: uniquePrefix() }));
});
