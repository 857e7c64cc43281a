/**
 * The tables watch when re-creating its etcd watch fails: after a lost
 * connection etcd is back just long enough for the old etcd watch to
 * reconnect, then away again, past a request's deadline, before the watch
 * that replaces it is in place. Once etcd is back, a WatchTables stream must
 * go on: every table read again, then later changes as they come. A store
 * closed meanwhile ends the stream and leaves nothing running: this file
 * exits without --exit (a watch left to etcd3 on a closed client would keep
 * it reconnecting forever).
 *
 * The daemon reaches etcd through a gated proxy. When to shut it is told by
 * a watch of the test's own on the store's etcd client, made after the
 * tables watch: etcd3 creates a client's watches again one at a time, in
 * the order they were made, and creates a new one after those; so once the
 * test's watch is back, the old tables watch is back and its replacement
 * is still to be created.
 */
import { once } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import { status } from "@grpc/grpc-js";

import type { StoreLimits } from "../../src/core/store.js";
import type { EtcdKv } from "../../src/store/etcd/kv.js";
import { EtcdStore } from "../../src/store/etcd/store.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { startGateProxy, type GateProxy } from "../helpers/gate-proxy.js";
import { RawRegistry } from "../helpers/raw.js";
import { RecordedTables } from "../helpers/watch.js";

const LIMITS: StoreLimits = { defaultMaxSessions: 10, maxTables: 1000, watchHistory: 10_000 };
/** The gated store's deadline for a request, and for setting up a watch; kept short so the test need not wait out 5 s. */
const REQUEST_TIMEOUT_MS = 2_000;
/** Bound of each wait for the stream: etcd3's and grpc-js's reconnect backoffs, and etcd3's circuit breaker (5 s), come first. */
const BACK_MS = 30_000;

describe("etcd: the tables watch when re-creating its etcd watch fails", function () {
  this.timeout(60_000);
  let etcd: TestEtcd | undefined;
  let prefix: string;
  /** Writes straight to etcd, while the gated store cannot reach it. */
  let writer: EtcdStore | undefined;
  const proxies: GateProxy[] = [];
  const daemons: TestDaemon[] = [];
  const raws: RawRegistry[] = [];

  before(async () => {
    etcd = await startEtcd();
    prefix = uniquePrefix();
    writer = new EtcdStore(LIMITS, { endpoints: [etcd.endpoint], prefix });
  });

  after(async () => {
    for (const r of raws.splice(0)) r.close();
    for (const d of daemons.splice(0)) await d.stop();
    for (const p of proxies.splice(0)) await p.close();
    await writer?.close();
    await etcd?.stop();
  });

  /** A daemon on a store that reaches etcd through a gate, and a WatchTables stream on it, past its snapshot. */
  async function gatedDaemon(): Promise<{ store: EtcdStore; proxy: GateProxy; tables: RecordedTables }> {
    const url = new URL(etcd!.endpoint);
    const proxy = await startGateProxy(url.hostname, Number(url.port));
    proxies.push(proxy);
    const store = new EtcdStore(LIMITS, { endpoints: [`http://${proxy.address}`], prefix, requestTimeoutMs: REQUEST_TIMEOUT_MS });
    const d = await startTestDaemon({ store });
    daemons.push(d);
    // A client of the test's own, so that the stream can outlive the store (d.stop() closes the daemon's).
    const raw = new RawRegistry(d.address);
    raws.push(raw);
    const tables = new RecordedTables(raw.client);
    await tables.until((w) => w.messages.length === 1, "the snapshot");
    return { store, proxy, tables };
  }

  /**
   * Cuts the store off etcd, lets it reconnect until the tables watch's old
   * etcd watch is back (which starts its replacement), and cuts it off again
   * before the replacement reaches etcd; returns with the gate shut, past
   * the replacement's deadline.
   */
  async function failTheReWatch(store: EtcdStore, proxy: GateProxy): Promise<void> {
    const client = (store as unknown as { kv: EtcdKv }).kv.client;
    const marker = await client.watch().key(`${uniquePrefix()}marker`).create();
    let disconnected = once(marker, "disconnected");
    proxy.shut();
    await disconnected;
    const back = new Promise<void>((resolve) =>
      marker.once("connected", () => {
        // Synchronous, before etcd3 sends the next create request: the replacement's.
        proxy.shut();
        resolve();
      }),
    );
    disconnected = once(marker, "disconnected");
    proxy.open();
    await back;
    await disconnected;
    await marker.cancel();
    // Not an assertion: a deadline the store set for the replacement (before the gate shut) passes before this one.
    await sleep(REQUEST_TIMEOUT_MS);
  }

  it("goes on once etcd is back: reads every table again, then delivers later changes", async () => {
    const { store, proxy, tables } = await gatedDaemon();
    await failTheReWatch(store, proxy);
    // Made while the daemon cannot reach etcd: only reading every table again shows it.
    const away = uniqueName("away");
    await writer!.createTable(away, undefined);
    proxy.open();
    await tables.until((w) => w.tables.has(away), "the table made while etcd was away", BACK_MS);
    // Made after that read: only an etcd watch in place tells the store to read it.
    const later = uniqueName("later");
    await writer!.createTable(later, undefined);
    await tables.until((w) => w.tables.has(later), "a table made after etcd was back", BACK_MS);
    expect(tables.broken).to.deep.equal([]);
    expect(tables.ended).to.equal(false);
  });

  it("ends the stream with UNAVAILABLE when the store closes while etcd is away, leaving nothing running", async () => {
    const { store, proxy, tables } = await gatedDaemon();
    await failTheReWatch(store, proxy);
    await store.close();
    const err = await tables.ending(BACK_MS);
    expect(err?.code).to.equal(status.UNAVAILABLE);
  });
});
