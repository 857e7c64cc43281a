/**
 * The one fixture of the registry contract suite: the daemon every test of a
 * store's run shares (started in the suite's `before`, stopped in its
 * `after`), its clients, and the helpers that give a test a table of its own
 * or a daemon of its own. Each concern file registers its describe blocks
 * over this fixture.
 */
import { expect } from "chai";
import type { SessionRegistryClient } from "@session-registry/client";

import type { Store, StoreLimits } from "../../../src/core/store.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../../helpers/daemon.js";
import type { RawRegistry } from "../../helpers/raw.js";

export type Session = Awaited<ReturnType<SessionRegistryClient["register"]>>;

export const DEFAULT_MAX_SESSIONS = 10;
export const LIMITS: StoreLimits = { defaultMaxSessions: DEFAULT_MAX_SESSIONS, maxTables: 1000, watchHistory: 10_000 };

export type MakeStore = (limits: StoreLimits) => Store | Promise<Store>;

export function ids(sessions: readonly Session[]): string[] {
  return sessions.map((s) => s.id);
}

export interface RegistryFixture {
  /** The store's name, as ServerInfo reports it. */
  readonly storeName: string;
  /** The shared daemon and its clients; read them inside tests, once the suite's `before` has run. */
  readonly daemon: TestDaemon;
  readonly client: SessionRegistryClient;
  readonly raw: RawRegistry;
  /** A fresh, empty table for one test. */
  newTable(maxSessions?: number): Promise<string>;
  /** Registers `n` sessions s1..sn at /p/s1../p/sn, one after another (so creation order is s1 first). */
  fill(table: string, n: number, prefix?: string): Promise<Session[]>;
  /** A dedicated daemon with a store of its own, for tests that change daemon-wide state. */
  withOwnDaemon(limits: StoreLimits, body: (c: SessionRegistryClient, own: TestDaemon) => Promise<void>): Promise<void>;
}

/**
 * Registers the hooks that start and stop the shared daemon on a store from
 * `makeStore`, in the describe block it is called in, and returns the
 * fixture over it.
 */
export function registryFixture(storeName: string, makeStore: MakeStore): RegistryFixture {
  let running: { daemon: TestDaemon; client: SessionRegistryClient; raw: RawRegistry } | undefined;

  before(async () => {
    const daemon = await startTestDaemon({
      config: { maxSessions: LIMITS.defaultMaxSessions, maxTables: LIMITS.maxTables },
      store: await makeStore(LIMITS),
    });
    running = { daemon, client: daemon.client(), raw: daemon.rawClient() };
  });

  after(async () => {
    await running?.daemon.stop();
  });

  function current(): NonNullable<typeof running> {
    if (running === undefined) throw new Error("the registry suite's daemon is not running");
    return running;
  }

  const fx: RegistryFixture = {
    storeName,
    get daemon() {
      return current().daemon;
    },
    get client() {
      return current().client;
    },
    get raw() {
      return current().raw;
    },
    async newTable(maxSessions = DEFAULT_MAX_SESSIONS) {
      const table = uniqueName();
      const res = await fx.client.createTable({ table, maxSessions });
      expect(res.created).to.equal(true);
      return table;
    },
    async fill(table, n, prefix = "s") {
      const out: Session[] = [];
      for (let i = 1; i <= n; i++) {
        out.push(await fx.client.register({ id: `${prefix}${i}`, projectPath: `/p/${prefix}${i}` }, { table }));
      }
      return out;
    },
    async withOwnDaemon(limits, body) {
      const own = await startTestDaemon({
        config: { maxSessions: limits.defaultMaxSessions, maxTables: limits.maxTables },
        store: await makeStore(limits),
      });
      try {
        await body(own.client(), own);
      } finally {
        await own.stop();
      }
    },
  };
  return fx;
}
