/**
 * SessionRegistryClient.registerWithKeepAlive against a real daemon with 1 s
 * ttls: a lease keeps its session past the ttl, close() lets it expire,
 * remove() removes it, and a session removed by someone else (or a daemon
 * gone past the expire time) is reported as lost. Waits are for events or
 * conditions, bounded; nothing asserts on timing.
 */
import { once } from "node:events";
import { expect } from "chai";
import {
  type Session,
  SessionLease,
  SessionNotFoundError,
  SessionRegistryClient,
  SessionRegistryError,
  status,
} from "@session-registry/client";

import { eventually, expectError, startTestDaemon, uniqueName, type TestDaemon } from "../../../test/helpers/daemon.js";

/** Resolves once the lease has emitted `renewed` n more times. */
function renewals(lease: SessionLease, n: number): Promise<Session[]> {
  return new Promise((resolve, reject) => {
    const seen: Session[] = [];
    const onRenewed = (s: Session) => {
      seen.push(s);
      if (seen.length === n) {
        cleanup();
        resolve(seen);
      }
    };
    const onLost = (err: SessionRegistryError) => {
      cleanup();
      reject(err);
    };
    const cleanup = () => {
      lease.off("renewed", onRenewed);
      lease.off("lost", onLost);
    };
    lease.on("renewed", onRenewed);
    lease.on("lost", onLost);
  });
}

describe("SessionRegistryClient.registerWithKeepAlive (SDK)", () => {
  let d: TestDaemon;
  let client: SessionRegistryClient;
  const leases: SessionLease[] = [];
  before(async () => {
    d = await startTestDaemon();
    client = d.client();
  });
  afterEach(() => {
    for (const lease of leases.splice(0)) lease.close();
  });
  after(async () => {
    await d.stop();
  });

  async function lease(table: string, projectPath: string): Promise<SessionLease> {
    const l = await client.registerWithKeepAlive({ projectPath, ttlMs: 1_000 }, { table });
    leases.push(l);
    return l;
  }

  async function newTable(): Promise<string> {
    const table = uniqueName("lease");
    await client.createTable({ table });
    return table;
  }

  it("keeps the session alive past its first expire time", async () => {
    const table = await newTable();
    const l = await lease(table, "/lease/alive");
    const first = l.session;
    expect(first.ttl).to.deep.equal({ seconds: 1, nanos: 0 });
    const firstExpiry = first.expireTime!.getTime();
    expect(l.table).to.equal(table);

    // Renewals until the session's first expire time is well behind us.
    while (Date.now() < firstExpiry + 300) await renewals(l, 1);
    const found = await client.lookup({ id: first.id }, { table });
    expect(found.revision).to.equal(first.revision); // a keep-alive is no write
    expect(l.session.expireTime!.getTime()).to.be.greaterThan(firstExpiry);
    expect(l.lost).to.equal(false);
  });

  it("close() stops renewing: the session expires, and no `lost` is emitted", async () => {
    const table = await newTable();
    const l = await lease(table, "/lease/close");
    let lost = 0;
    l.on("lost", () => lost++);
    l.close();
    l.close(); // idempotent
    await l.done();
    await eventually(
      () =>
        client.lookup({ id: l.session.id }, { table }).then(
          () => false,
          (err: unknown) => err instanceof SessionNotFoundError,
        ),
      "the session to expire",
      5_000,
    );
    expect(lost).to.equal(0);
    expect(l.lost).to.equal(false);
  });

  it("remove() removes the session at once and done() resolves", async () => {
    const table = await newTable();
    const l = await lease(table, "/lease/remove");
    const done = l.done();
    const removed = await l.remove();
    expect(removed?.id).to.equal(l.session.id);
    await done;
    await expectError(client.lookup({ id: l.session.id }, { table }), SessionNotFoundError);
    expect(await l.remove()).to.equal(undefined); // again: already gone, allowMissing
  });

  it("reports `lost` with SessionNotFoundError when someone else removes the session", async () => {
    const table = await newTable();
    const l = await lease(table, "/lease/stolen");
    const done = l.done();
    const lostEvent = once(l, "lost");
    await client.remove(l.session.id, { table });
    const [err] = (await lostEvent) as [SessionRegistryError];
    expect(err).to.be.instanceOf(SessionNotFoundError);
    expect(l.lost).to.equal(true);
    expect(await expectError(done, SessionNotFoundError)).to.equal(err);
    // done() asked for only now rejects too.
    expect(await expectError(l.done(), SessionNotFoundError)).to.equal(err);
  });

  it("rejects a ttl below 1 s (or none) with a TypeError, before registering", async () => {
    const table = await newTable();
    for (const ttlMs of [999, 0, -1, Number.NaN, undefined]) {
      const err = await expectError(
        client.registerWithKeepAlive({ projectPath: "/lease/bad", ttlMs: ttlMs as number }, { table }),
        TypeError,
      );
      expect(err.message).to.match(/ttlMs >= 1000/);
    }
    await expectError(client.registerWithKeepAlive({ projectPath: "/lease/bad", ttlMs: 1_000 }, { table, intervalMs: 0 }), TypeError);
    expect((await client.getTable(table)).sessionCount).to.equal(0);
  });

  it("reports `lost` with the transport error once the daemon is unreachable past the expire time", async () => {
    const other = await startTestDaemon();
    // Not made through `other.client()`: stopping the daemon must not close it (that would close the lease).
    const own = new SessionRegistryClient(other.address, { timeoutMs: 2_000 });
    try {
      const l = await own.registerWithKeepAlive({ projectPath: "/lease/gone", ttlMs: 1_000 });
      let renewedAfterStop = 0;
      await other.stop();
      l.on("renewed", () => renewedAfterStop++);
      const [err] = (await once(l, "lost")) as [SessionRegistryError];
      expect(err).to.be.instanceOf(SessionRegistryError);
      expect(err.code).to.equal(status.UNAVAILABLE);
      expect(renewedAfterStop).to.equal(0);
      // Retried up to the expire time rather than giving up at the first failure.
      expect(Date.now()).to.be.at.least(l.session.expireTime!.getTime());
      await expectError(l.done(), SessionRegistryError);
    } finally {
      own.close();
      await other.stop();
    }
  });
});
