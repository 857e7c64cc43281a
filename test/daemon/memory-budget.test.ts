/**
 * The memory budget on a real daemon: a flood of the largest updates
 * (history) and watchers that never read (queues) stay within
 * --memory-budget, the daemon stays up, and a well-behaved client on its
 * own connection keeps getting answers throughout.
 *
 * Waits are bounded and wait for a condition; nothing asserts a duration.
 * The resident-memory bound is a size, measured in a daemon process of its own.
 */
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

import { expect } from "chai";
import { credentials, status, type ServiceError } from "@grpc/grpc-js";
import { SessionRegistryClient as GeneratedClient, Session } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { ConfigError } from "../../src/daemon/config.js";
import { DEFAULT_MEMORY_BUDGET, HEAP_RESERVE, resolveMemoryBudget } from "../../src/daemon/budget.js";
import { eventually, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { killDaemons, Probe, rssOf, spawnDaemon, waitForPort, type DaemonProcess } from "../helpers/daemon-process.js";
import { RawRegistry, wireDetails } from "../helpers/raw.js";
import { RecordedWatch as Watch } from "../helpers/watch.js";

const MIB = 1024 * 1024;

function session(fields: Partial<Session>): Session {
  return { ...Session.fromPartial({}), ...fields };
}

/** The most metadata a session may carry (16384 bytes of keys and values), different for each `n`. */
function biggest(n: number): Map<string, string> {
  return new Map(Array.from({ length: 4 }, (_, i) => [`k${i}`, `${n}:${i}:`.padEnd(4094, "x")]));
}

/** A full garbage collection of this process (tests only: node's --expose-gc, switched on at run time). */
function collectGarbage(): void {
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  gc();
}

describe("memory budget on a real daemon", function () {
  this.timeout(120_000);

  describe("its size", () => {
    it("is 512 MiB by default, or half the JavaScript heap when that is less", () => {
      expect(resolveMemoryBudget(undefined, 4096 * MIB)).to.equal(DEFAULT_MEMORY_BUDGET);
      expect(resolveMemoryBudget(undefined, 600 * MIB)).to.equal(300 * MIB);
    });

    it("is the configured size when the heap holds it with room to spare, and refused otherwise, saying how to fix it", () => {
      expect(resolveMemoryBudget(100 * MIB, 100 * MIB + HEAP_RESERVE)).to.equal(100 * MIB);
      expect(() => resolveMemoryBudget(100 * MIB, 100 * MIB + HEAP_RESERVE - 1)).to.throw(
        ConfigError,
        /^--memory-budget 100MiB does not fit in node's JavaScript heap of 164 MiB \(it needs 64 MiB besides\); lower --memory-budget, or start node with a larger heap: NODE_OPTIONS=--max-old-space-size=228$/,
      );
    });

    it("that the heap cannot hold stops the daemon process at start-up with exit code 2", async () => {
      const proc = spawnDaemon(["--listen", "127.0.0.1:0", "--memory-budget", "128MiB"], ["--max-old-space-size=128"]);
      const { code } = await proc.exited;
      expect(code).to.equal(2);
      expect(proc.stderr()).to.match(/--memory-budget 128MiB does not fit in node's JavaScript heap/);
      expect(proc.stdout()).to.equal("");
    });
  });

  describe("what the daemon keeps (in process)", () => {
    let d: TestDaemon;
    const BUDGET = 32 * MIB;

    before(async () => {
      d = await startTestDaemon({ config: { memoryBudget: BUDGET } });
    });
    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
    });

    it("keeps less heap than the budget after a flood of the largest updates in four tables: the estimates are upper bounds", async () => {
      const raw = d.rawClient();
      const tables = [0, 1, 2, 3].map((i) => uniqueName(`kept${i}`));
      for (const table of tables) {
        await raw.createTable({ table, maxSessions: 10 });
        await raw.register({ requestId: "", table, session: session({ id: "big", projectPath: "/big", metadata: biggest(0) }) });
      }
      collectGarbage();
      const before = process.memoryUsage().heapUsed;
      // Unbounded, the four histories would keep all 8,000 events: ~130 MB of metadata.
      await Promise.all(
        Array.from({ length: 8 }, async (_, w) => {
          for (let i = 0; i < 1000; i++) {
            await raw.update({
              requestId: "",
              table: tables[w % 4]!,
              session: session({ id: "big", metadata: biggest(w * 10_000 + i) }),
              updateMask: ["metadata"],
              expectedRevision: 0,
            });
          }
        }),
      );
      collectGarbage();
      const kept = process.memoryUsage().heapUsed - before;
      expect(kept, `kept ${(kept / MIB).toFixed(1)} MiB`).to.be.below(BUDGET);
    });
  });

  describe("watch queues (in process)", () => {
    let d: TestDaemon;
    let raw: RawRegistry;
    const readers: GeneratedClient[] = [];

    before(async () => {
      // Only the budget can end a watcher here: the per-watcher limits are far away.
      d = await startTestDaemon({ config: { memoryBudget: 16 * MIB, watchQueue: 1_000_000, watchQueueBytes: 1024 * MIB } });
      raw = d.rawClient();
    });
    after(async () => {
      for (const r of readers) r.close();
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
    });

    it("ends the watcher with the most queued first, with WATCHER_TOO_SLOW, and leaves the others", async () => {
      const table = uniqueName("queues");
      await raw.createTable({ table, maxSessions: 10 });
      await raw.register({ requestId: "", table, session: session({ id: "big", projectPath: "/big", metadata: biggest(0) }) });
      const update = async (n: number) =>
        (
          await raw.update({
            requestId: "",
            table,
            session: session({ id: "big", metadata: biggest(n) }),
            updateMask: ["metadata"],
            expectedRevision: 0,
          })
        ).session!.revision;

      // Each watcher reads on a connection of its own, and stops reading after its snapshot.
      const watch = () => {
        const reader = new GeneratedClient(d.address, credentials.createInsecure());
        readers.push(reader);
        return new Watch(reader, table);
      };
      const first = watch();
      await first.until((w) => w.messages.length >= 1, "the first snapshot");
      first.call.pause();
      let n = 1;
      for (; n <= 50; n++) await update(n);
      const second = watch();
      await second.until((w) => w.messages.length >= 1, "the second snapshot");
      second.call.pause();
      expect(d.daemon.registry.activeWatchers).to.equal(2);

      // Both queue every update from here; the first, 50 updates ahead, always holds more.
      const written: number[] = [];
      while (d.daemon.registry.activeWatchers === 2) {
        if (n > 5000) throw new Error("no watcher was ended: the budget does not hold the queues");
        written.push(await update(n++));
      }
      first.call.resume();
      const err = await first.ending();
      expect(err?.code).to.equal(status.RESOURCE_EXHAUSTED);
      const info = wireDetails(err!.metadata).errorInfos[0]!;
      expect(info.reason).to.equal("WATCHER_TOO_SLOW");
      const resume = Number(info.metadata.get("resume_revision"));
      // What the first watcher got, and resume_revision, join up with no gap.
      const delivered = first.eventRevisions;
      expect(resume).to.equal(delivered.length === 0 ? resume : delivered[delivered.length - 1]! + 1);

      // The second is still open and gets every update once it reads again.
      expect(second.ended).to.equal(false);
      second.call.resume();
      const last = written[written.length - 1]!;
      await second.until((w) => w.eventRevisions.includes(last), "the last update on the second watcher");
      second.cancel();
      await eventually(() => d.daemon.registry.activeWatchers === 0, "every watch to be released");
    });
  });

  describe("floods against a daemon process", () => {
    const BUDGET = 32 * MIB;
    /**
     * The daemon runs with a JavaScript heap of HEAP_MB, as an operator sizes
     * it to the budget (docs/operations.md, memory budget): what the budget lets it keep
     * fits with room to spare, and a daemon that kept every event of the
     * flood (~130 MB of metadata) would die of heap exhaustion.
     */
    const HEAP_MB = 112;
    /** What RSS may grow by past the budget: garbage the heap limit allows V8 to leave uncollected, young generation, buffers in flight. */
    const MARGIN = 128 * MIB;
    let proc: DaemonProcess;
    let address: string;
    const clients: RawRegistry[] = [];
    const raw = () => {
      const c = new RawRegistry(address);
      clients.push(c);
      return c;
    };

    before(async () => {
      proc = spawnDaemon(
        ["--listen", "127.0.0.1:0", "--memory-budget", `${BUDGET}`, "--log-level", "warn"],
        [`--max-old-space-size=${HEAP_MB}`],
      );
      address = `127.0.0.1:${await waitForPort(proc)}`;
    });
    after(() => {
      for (const c of clients) c.close();
      killDaemons();
    });

    it("keeps a flood of the largest updates in four tables within the budget, answering a probe throughout", async () => {
      const admin = raw();
      const tables = [0, 1, 2, 3].map((i) => uniqueName(`flood${i}`));
      for (const table of tables) {
        await admin.createTable({ table, maxSessions: 10 });
        await admin.register({ requestId: "", table, session: session({ id: "big", projectPath: "/big", metadata: biggest(0) }) });
      }
      await admin.register({ requestId: "", table: tables[0]!, session: session({ id: "probe", projectPath: "/probe" }) });
      const baseline = rssOf(proc.child.pid!)!;
      const probe = new Probe(address, tables[0]!, "probe");
      let peak = baseline;
      const sampler = setInterval(() => (peak = Math.max(peak, rssOf(proc.child.pid!) ?? peak)), 20);
      try {
        // 8 writers, 1,000 updates each: unbounded, the histories would keep ~130 MB of metadata, past the heap.
        await Promise.all(
          Array.from({ length: 8 }, async (_, w) => {
            const writer = raw();
            const table = tables[w % 4]!;
            for (let i = 0; i < 1000; i++) {
              await writer.update({
                requestId: "",
                table,
                session: session({ id: "big", metadata: biggest(w * 10_000 + i) }),
                updateMask: ["metadata"],
                expectedRevision: 0,
              });
            }
          }),
        );
      } finally {
        clearInterval(sampler);
        await probe.stop();
      }
      peak = Math.max(peak, rssOf(proc.child.pid!) ?? peak);
      expect(probe.failures).to.deep.equal([]);
      expect(probe.answered).to.be.greaterThan(0);
      expect(peak - baseline, `RSS grew from ${(baseline / MIB).toFixed(0)} to ${(peak / MIB).toFixed(0)} MiB`).to.be.below(
        BUDGET + MARGIN,
      );
      // The oldest history went: a watch from the first revisions is compacted, and the daemon is up.
      const old = new Watch(admin.client, tables[0]!, 2);
      const err = await old.ending();
      expect(wireDetails(err!.metadata).errorInfos[0]!.reason).to.equal("REVISION_COMPACTED");
      expect(proc.child.exitCode).to.equal(null);
    });

    it("refuses writes past the sessions' share with MEMORY_BUDGET_REACHED and still answers reads", async () => {
      const admin = raw();
      const table = uniqueName("full");
      await admin.createTable({ table, maxSessions: 100_000 });
      let refused: ServiceError | undefined;
      let n = 0;
      while (refused === undefined) {
        if (n > 5000) throw new Error("never refused: the budget does not hold sessions");
        try {
          await admin.register({ requestId: "", table, session: session({ id: `s${n}`, projectPath: `/s/${n}`, metadata: biggest(n) }) });
          n++;
        } catch (err) {
          refused = err as ServiceError;
        }
      }
      expect(refused.code).to.equal(status.RESOURCE_EXHAUSTED);
      const info = wireDetails(refused.metadata).errorInfos[0]!;
      expect(info.reason).to.equal("MEMORY_BUDGET_REACHED");
      expect(Number(info.metadata.get("budget_bytes"))).to.equal(BUDGET * 0.75);
      expect((await admin.lookup({ table, key: { $case: "id", value: "s0" } })).session?.id).to.equal("s0");
      expect((await admin.list({ table, pageSize: 1, pageToken: "" })).totalSize).to.equal(n);
      // Removing makes room again.
      await admin.deleteTable({ table, force: true });
      await admin.register({ requestId: "", table: "", session: session({ id: "after", projectPath: "/after", metadata: biggest(1) }) });
      expect(proc.child.exitCode).to.equal(null);
    });
  });
});
