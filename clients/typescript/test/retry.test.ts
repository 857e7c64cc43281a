/**
 * The SDK's safe retries: register, update and remove retry on UNAVAILABLE,
 * register with one request_id across its attempts. The failures are real:
 * a store that commits a write and then reports UNAVAILABLE (what an etcd
 * write that timed out after committing looks like to the daemon), and a TCP
 * proxy in front of a real daemon that drops the first connections.
 */
import { createServer, connect, type Server, type Socket } from "node:net";
import { expect } from "chai";
import { ProjectAlreadyOpenError, SessionRegistryClient, SessionRegistryError, status } from "@session-registry/client";

import { storeUnavailable } from "../../../src/core/errors.js";
import type { NewSession, Session, SessionPatch } from "../../../src/core/model.js";
import { MemoryStore } from "../../../src/store/memory/store.js";
import type { WriteConditions } from "../../../src/core/store.js";
import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../../../test/helpers/daemon.js";

const LIMITS = { defaultMaxSessions: 10, maxTables: 100, watchHistory: 1000 };
const FAST = { maxAttempts: 4, initialBackoffMs: 5, maxBackoffMs: 20 };

type Method = "register" | "update" | "remove";

/**
 * A memory store that can make its next calls of a method fail with
 * UNAVAILABLE, either after doing the write ("lost reply") or before it
 * ("down"), and records every call.
 */
class FlakyStore extends MemoryStore {
  readonly calls: { method: Method; requestId?: string }[] = [];
  private readonly faults = new Map<Method, { mode: "lostReply" | "down"; left: number }>();

  fail(method: Method, mode: "lostReply" | "down", times = 1): void {
    this.faults.set(method, { mode, left: times });
  }

  private async faulty<T>(method: Method, write: () => Promise<T>): Promise<T> {
    const fault = this.faults.get(method);
    if (fault === undefined || fault.left === 0) return write();
    fault.left--;
    if (fault.mode === "down") throw storeUnavailable("injected: the store is down");
    await write();
    throw storeUnavailable("injected: the write committed but its reply was lost");
  }

  override register(table: string, s: NewSession, requestId?: string): Promise<Session> {
    this.calls.push({ method: "register", ...(requestId !== undefined ? { requestId } : {}) });
    return this.faulty("register", () => super.register(table, s, requestId));
  }

  override update(table: string, id: string, patch: SessionPatch, conditions: WriteConditions): Promise<Session> {
    const { requestId } = conditions;
    this.calls.push({ method: "update", ...(requestId !== undefined ? { requestId } : {}) });
    return this.faulty("update", () => super.update(table, id, patch, conditions));
  }

  override remove(table: string, id: string, conditions: WriteConditions & { allowMissing: boolean }): Promise<Session | undefined> {
    const { requestId } = conditions;
    this.calls.push({ method: "remove", ...(requestId !== undefined ? { requestId } : {}) });
    return this.faulty("remove", () => super.remove(table, id, conditions));
  }

  callsOf(method: Method) {
    return this.calls.filter((c) => c.method === method);
  }
}

describe("SDK retries (register, update, remove on UNAVAILABLE)", () => {
  let d: TestDaemon;
  let store: FlakyStore;
  let client: SessionRegistryClient;

  before(async () => {
    store = new FlakyStore(LIMITS);
    d = await startTestDaemon({ store });
    client = d.client({ retry: FAST });
  });
  after(async () => {
    await d.stop();
  });
  beforeEach(() => {
    store.calls.length = 0;
  });

  async function newTable(): Promise<string> {
    const table = uniqueName();
    await client.createTable({ table });
    return table;
  }

  it("retries a Register whose reply was lost with the same request_id: it resolves, and one session exists", async () => {
    const table = await newTable();
    store.fail("register", "lostReply");
    const s = await client.register({ projectPath: "/retry/lost" }, { table });
    const calls = store.callsOf("register");
    expect(calls).to.have.length(2);
    expect(calls[0]!.requestId).to.match(/^[0-9a-f-]{36}$/);
    expect(calls[1]!.requestId).to.equal(calls[0]!.requestId);
    expect((await client.getTable(table)).sessionCount).to.equal(1);
    expect((await client.lookup({ projectPath: "/retry/lost" }, { table })).id).to.equal(s.id);
  });

  it("uses the caller's request_id when given", async () => {
    const table = await newTable();
    store.fail("register", "lostReply");
    await client.register({ id: "mine", projectPath: "/retry/own", requestId: "own-key" }, { table });
    expect(store.callsOf("register").map((c) => c.requestId)).to.deep.equal(["own-key", "own-key"]);
  });

  it("without retries, the lost reply surfaces as UNAVAILABLE although the session was registered", async () => {
    const table = await newTable();
    const noRetry = d.client({ retry: false });
    store.fail("register", "lostReply");
    const err = await expectError(noRetry.register({ projectPath: "/retry/none" }, { table }), SessionRegistryError);
    expect(err.code).to.equal(status.UNAVAILABLE);
    expect(store.callsOf("register")).to.have.length(1);
    expect(store.calls[0]!.requestId, "no request_id without retries").to.equal(undefined);
    expect((await client.getTable(table)).sessionCount).to.equal(1);
  });

  it("gives up after maxAttempts and rejects with the last UNAVAILABLE", async () => {
    const table = await newTable();
    store.fail("register", "down", 100);
    const err = await expectError(client.register({ projectPath: "/retry/down" }, { table }), SessionRegistryError);
    store.fail("register", "down", 0);
    expect(err.code).to.equal(status.UNAVAILABLE);
    expect(err.reason).to.equal("STORE_UNAVAILABLE");
    expect(store.callsOf("register")).to.have.length(FAST.maxAttempts);
    expect((await client.getTable(table)).sessionCount).to.equal(0);
  });

  it("tells onRetry of each retry, once, with the attempt that failed and why", async () => {
    const table = await newTable();
    const events: { method: string; attempt: number; maxAttempts: number; reason: string; delayMs: number }[] = [];
    const watched = d.client({
      retry: FAST,
      onRetry: (e) =>
        events.push({ method: e.method, attempt: e.attempt, maxAttempts: e.maxAttempts, reason: e.error.reason, delayMs: e.delayMs }),
    });
    store.fail("register", "down", 2);
    await watched.register({ projectPath: "/retry/told" }, { table });
    expect(events.map(({ delayMs: _, ...e }) => e)).to.deep.equal([
      { method: "register", attempt: 1, maxAttempts: FAST.maxAttempts, reason: "STORE_UNAVAILABLE" },
      { method: "register", attempt: 2, maxAttempts: FAST.maxAttempts, reason: "STORE_UNAVAILABLE" },
    ]);
    for (const e of events) expect(e.delayMs).to.be.within(0, FAST.maxBackoffMs);
  });

  it("does not retry other errors", async () => {
    const table = await newTable();
    await client.register({ projectPath: "/retry/taken" }, { table });
    store.calls.length = 0;
    await expectError(client.register({ projectPath: "/retry/taken" }, { table }), ProjectAlreadyOpenError);
    expect(store.callsOf("register")).to.have.length(1);
  });

  it("retries a Remove whose reply was lost with the same request_id: it returns the removed session, not SESSION_NOT_FOUND", async () => {
    const table = await newTable();
    const s = await client.register({ projectPath: "/retry/remove" }, { table });
    store.fail("remove", "lostReply");
    const removed = await client.remove(s.id, { table, expectedRevision: s.revision });
    expect(removed).to.deep.equal(s);
    const calls = store.callsOf("remove");
    expect(calls).to.have.length(2);
    expect(calls[1]!.requestId)
      .to.equal(calls[0]!.requestId)
      .and.to.match(/^[0-9a-f-]{36}$/);
    expect((await client.getTable(table)).sessionCount).to.equal(0);
  });

  it("retries a Remove that failed before removing, and returns the removed session", async () => {
    const table = await newTable();
    const s = await client.register({ projectPath: "/retry/remove-down" }, { table });
    store.fail("remove", "down");
    const removed = await client.remove(s.id, { table });
    expect(removed?.id).to.equal(s.id);
  });

  it("retries a conditional Update whose reply was lost with the same request_id: one update, no REVISION_MISMATCH", async () => {
    const table = await newTable();
    const s = await client.register({ projectPath: "/retry/update" }, { table });
    store.fail("update", "lostReply");
    const updated = await client.update({ id: s.id, table, name: "renamed", expectedRevision: s.revision });
    expect(updated.name).to.equal("renamed");
    const calls = store.callsOf("update");
    expect(calls).to.have.length(2);
    expect(calls[1]!.requestId).to.equal(calls[0]!.requestId);
    const now = await client.lookup({ id: s.id }, { table });
    expect(now.revision, "applied once").to.equal(updated.revision);
  });

  it("refuses bad retry options with a TypeError", () => {
    for (const retry of [{ maxAttempts: 0 }, { maxAttempts: 1.5 }, { initialBackoffMs: -1 }, { maxBackoffMs: Number.NaN }]) {
      expect(() => new SessionRegistryClient("127.0.0.1:1", { retry })).to.throw(TypeError, /retry\./);
    }
  });
});

describe("SDK retries through a connection that fails", () => {
  let d: TestDaemon;
  let proxy: Server;
  let proxyAddress: string;
  const sockets = new Set<Socket>();
  /** Connections still to drop at once. */
  let drop = 0;
  let dropped = 0;

  before(async () => {
    d = await startTestDaemon();
    const [host, port] = [d.address.slice(0, d.address.lastIndexOf(":")), Number(d.address.slice(d.address.lastIndexOf(":") + 1))];
    proxy = createServer((downstream) => {
      sockets.add(downstream);
      downstream.on("close", () => sockets.delete(downstream));
      downstream.on("error", () => undefined);
      if (drop > 0) {
        drop--;
        dropped++;
        downstream.destroy();
        return;
      }
      const upstream = connect(port, host);
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.on("error", () => downstream.destroy());
      downstream.on("close", () => upstream.destroy());
      upstream.on("close", () => downstream.destroy());
      downstream.pipe(upstream).pipe(downstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const addr = proxy.address();
    if (addr === null || typeof addr === "string") throw new Error("no proxy address");
    proxyAddress = `127.0.0.1:${addr.port}`;
  });

  after(async () => {
    for (const s of sockets) s.destroy();
    await new Promise<void>((resolve) => proxy.close(() => resolve()));
    await d.stop();
  });

  it("without retries, a dropped connection fails the Register with UNAVAILABLE", async () => {
    const table = uniqueName();
    await d.client().createTable({ table });
    drop = 1;
    const client = new SessionRegistryClient(proxyAddress, { retry: false });
    try {
      const err = await expectError(client.register({ projectPath: "/retry/proxy-none" }, { table }), SessionRegistryError);
      expect(err.code).to.equal(status.UNAVAILABLE);
      expect((await d.client().getTable(table)).sessionCount).to.equal(0);
    } finally {
      client.close();
      drop = 0;
    }
  });

  it("registers once when the first connection attempts are dropped", async () => {
    const table = uniqueName();
    await d.client().createTable({ table });
    drop = 2;
    const client = new SessionRegistryClient(proxyAddress, {
      retry: { maxAttempts: 6, initialBackoffMs: 20, maxBackoffMs: 100 },
      channelOptions: { "grpc.initial_reconnect_backoff_ms": 10, "grpc.max_reconnect_backoff_ms": 20 },
    });
    try {
      const s = await client.register({ projectPath: "/retry/proxy" }, { table });
      expect(dropped).to.be.at.least(1);
      const t = await d.client().getTable(table);
      expect(t.sessionCount).to.equal(1);
      expect((await d.client().lookup({ projectPath: "/retry/proxy" }, { table })).id).to.equal(s.id);
    } finally {
      client.close();
    }
  });
});
