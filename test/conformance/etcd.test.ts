/**
 * The store-independent suites against a real etcd: one etcd for this file
 * (Debian's etcd-server, on loopback with a temporary data dir), each store
 * under a key prefix of its own, so that stores stay as isolated as the
 * suites require. The store runs as daemons run it, its reads served by the
 * read cache, and once more without the cache, reading etcd every time.
 */
import { Etcd3 } from "etcd3";

import type { StoreLimits } from "../../src/core/store.js";
import { Keys } from "../../src/store/etcd/keys.js";
import { EtcdStore } from "../../src/store/etcd/store.js";
import { suiteEtcd, uniquePrefix } from "../helpers/etcd.js";
import { liveConformance } from "./live-suite.js";
import { registryConformance } from "./registry/index.js";
import { rulesConformance } from "./rules-suite.js";

describe("etcd store", function () {
  // Starting etcd takes a moment (an election on a fresh data dir).
  this.timeout(30_000);
  const etcd = suiteEtcd();
  const endpoint = (): string => etcd().endpoint;

  registryConformance("etcd", (limits) => new EtcdStore(limits, { endpoints: [endpoint()], prefix: uniquePrefix() }));
  liveConformance("etcd", (limits) => new EtcdStore(limits, { endpoints: [endpoint()], prefix: uniquePrefix() }));

  // The store of the retention test keeps its request_ids under this prefix, where the test reads their leases.
  const retentionKeys = new Keys(uniquePrefix());
  rulesConformance("etcd", (limits) => new EtcdStore(limits, { endpoints: [endpoint()], prefix: uniquePrefix() }), {
    kind: "lease",
    makeStore: (limits) => new EtcdStore(limits, { endpoints: [endpoint()], prefix: retentionKeys.prefix }),
    secondsLeft: (table, method, requestId) => leaseSecondsLeft(endpoint(), retentionKeys.request(table, method, requestId)),
  });
});

describe("etcd store without the read cache", function () {
  this.timeout(30_000);
  const etcd = suiteEtcd();
  const uncached = (limits: StoreLimits) =>
    new EtcdStore(limits, { endpoints: [etcd().endpoint], prefix: uniquePrefix(), readCache: false });
  registryConformance("etcd", uncached);
  liveConformance("etcd", uncached);
});

/** How long the lease of `key` has left to live, in seconds (Infinity when the key has no lease). */
async function leaseSecondsLeft(endpoint: string, key: string): Promise<number> {
  const client = new Etcd3({ hosts: [endpoint] });
  try {
    const res = await client.kv.range({ key: Buffer.from(key, "utf8") });
    const kv = res.kvs[0];
    if (kv === undefined) throw new Error(`etcd has no key ${key}`);
    if (kv.lease === "0") return Infinity;
    return Number((await client.leaseClient.leaseTimeToLive({ ID: kv.lease })).TTL);
  } finally {
    client.close();
  }
}
