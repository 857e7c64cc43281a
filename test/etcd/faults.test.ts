/**
 * etcd failing under a daemon: calls get UNAVAILABLE with
 * reason STORE_UNAVAILABLE (never INTERNAL), health turns NOT_SERVING, and
 * the daemon recovers on its own when etcd returns; nothing a client was
 * told is registered is lost, nothing is duplicated, and a watch open
 * across the outage goes on without losing events.
 */
import { expect } from "chai";
import { EventType, SessionRegistryError, status, type SessionRegistryClient } from "@session-registry/client";

import { HealthClient, type HealthWatch } from "../daemon/health-client.js";
import type { TestDaemon } from "../helpers/daemon.js";
import { startEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";
import { WatchCollector, etcdDaemon, waitFor } from "./collector.js";

describe("etcd: faults", function () {
  this.timeout(60_000);
  let etcd: TestEtcd | undefined;
  const daemons: TestDaemon[] = [];
  const healthClients: HealthClient[] = [];
  const collectors: WatchCollector[] = [];

  before(async () => {
    etcd = await startEtcd();
  });

  after(async () => {
    for (const c of collectors.splice(0)) await c.close();
    for (const h of healthClients.splice(0)) h.close();
    for (const d of daemons.splice(0)) await d.stop();
    await etcd?.stop();
  });

  async function daemon(): Promise<TestDaemon> {
    const d = await etcdDaemon(etcd!.endpoint, uniquePrefix());
    daemons.push(d);
    return d;
  }

  function healthWatch(d: TestDaemon, service = ""): HealthWatch {
    const h = new HealthClient(d.address);
    healthClients.push(h);
    return h.watch(service);
  }

  function expectStoreUnavailable(err: unknown): void {
    expect(err).to.be.instanceOf(SessionRegistryError);
    const e = err as SessionRegistryError;
    expect({ code: status[e.code], reason: e.reason }).to.deep.equal({ code: "UNAVAILABLE", reason: "STORE_UNAVAILABLE" });
  }

  it("starts NOT_SERVING while etcd is unreachable, and serves (with its default table) once etcd is back", async () => {
    etcd!.kill9();
    const d = await daemon();
    const h = new HealthClient(d.address);
    healthClients.push(h);
    expect(await h.check("")).to.equal("NOT_SERVING");
    expect(await h.check("sessionregistry.v1.SessionRegistry")).to.equal("NOT_SERVING");
    const client = d.client({ timeoutMs: 20_000 });
    try {
      await client.getTable();
      expect.fail("getTable should fail while etcd is down");
    } catch (err) {
      expectStoreUnavailable(err);
    }
    // Server info reads no table, so it answers while the store is away, and says so.
    expect(await client.serverInfo()).to.deep.include({ store: "etcd", storeAvailable: false });

    await etcd!.restart();
    await waitFor("health SERVING after etcd returned", async () => (await h.check("")) === "SERVING", 20_000);
    expect(await h.check("sessionregistry.v1.SessionRegistry")).to.equal("SERVING");
    expect(await client.serverInfo()).to.deep.include({ store: "etcd", storeAvailable: true });
    const table = await client.getTable();
    expect(table.name).to.equal("default");
    expect((await client.register({ projectPath: "/work/after-start" })).projectPath).to.equal("/work/after-start");
  });

  it("survives kill -9 of etcd during a stream of Registers: no loss, no duplicate, UNAVAILABLE meanwhile, then recovery", async () => {
    const d = await daemon();
    const client: SessionRegistryClient = d.client({ timeoutMs: 30_000 });
    await client.createTable({ table: "faults", maxSessions: 100_000 });
    const health = healthWatch(d);
    await health.until(() => health.statuses.includes("SERVING"), "SERVING at start");
    const feed = new WatchCollector(d.client(), { table: "faults", autoResume: true, backoff: { initialMs: 100, maxMs: 500 } });
    collectors.push(feed);
    await feed.started();

    const succeeded: string[] = [];
    const failures: unknown[] = [];
    let next = 0;
    let phase: "before" | "outage" | "after" = "before";
    let afterSuccesses = 0;
    const attempt = async (): Promise<void> => {
      const id = `k-${next++}`;
      try {
        await client.register({ id, projectPath: `/work/faults/${id}` }, { table: "faults" });
        succeeded.push(id);
        if (phase === "after") afterSuccesses++;
      } catch (err) {
        failures.push(err);
      }
    };
    // Four writers, each sequential, until the test says stop.
    let stop = false;
    const writers = Array.from({ length: 4 }, async () => {
      while (!stop) {
        await attempt();
        if (phase === "outage") await new Promise((resolve) => setTimeout(resolve, 20));
      }
    });

    try {
      await waitFor("some Registers before the outage", () => succeeded.length >= 20);
      etcd!.kill9();
      phase = "outage";
      await waitFor("failed Registers during the outage", () => failures.length >= 5);
      await health.until(() => health.statuses.includes("NOT_SERVING"), "NOT_SERVING during the outage", 15_000);
      await etcd!.restart();
      phase = "after";
      await health.until(() => health.statuses.lastIndexOf("SERVING") > health.statuses.indexOf("NOT_SERVING"), "SERVING again", 20_000);
      await waitFor("Registers succeeding after the restart", () => afterSuccesses >= 20, 20_000);
    } finally {
      stop = true;
      await Promise.all(writers);
    }

    // Calls during the outage were UNAVAILABLE / STORE_UNAVAILABLE, never INTERNAL.
    expect(failures.length).to.be.greaterThan(0);
    for (const err of failures) expectStoreUnavailable(err);

    // Every session whose Register succeeded is there, once. (A Register that
    // failed may have committed anyway: etcd's outcome was unknown.)
    const listed: string[] = [];
    for await (const s of client.list({ table: "faults", pageSize: 500 })) listed.push(s.id);
    expect(new Set(listed).size).to.equal(listed.length);
    const present = new Set(listed);
    expect(succeeded.filter((id) => !present.has(id))).to.deep.equal([]);

    // The watch open across the outage saw every session registered, in order, none twice.
    await waitFor("the watch to catch up", () => {
      const seen = new Set<string>();
      for (const item of feed.items) {
        if (item.kind === "snapshot") for (const s of item.sessions) seen.add(s.id);
        else seen.add(item.session.id);
      }
      return listed.every((id) => seen.has(id));
    });
    expect(feed.error).to.equal(undefined);
    const events = feed.events;
    for (let i = 1; i < events.length; i++) expect(events[i]!.revision).to.be.greaterThan(events[i - 1]!.revision);
    const registeredIds = events.filter((e) => e.type === EventType.EVENT_TYPE_REGISTERED).map((e) => e.session.id);
    expect(new Set(registeredIds).size).to.equal(registeredIds.length);
  });
});
