/**
 * Contract rules that the registry and live suites left unchecked: each test
 * here fails when its rule is broken in a store or in the core. Like the
 * other suites it goes through a real daemon over gRPC only, so every Store
 * runs it unchanged; the one store-specific part, how a store shows that it
 * keeps request_ids for the whole retention window without waiting it out,
 * comes in as a RetentionProbe.
 *
 * Races are made to happen inside the store: a Barrier holds the racing
 * calls at the store's door until all of them have arrived, then lets them
 * in together.
 */
import { expect } from "chai";
import {
  InvalidArgumentError,
  ProjectAlreadyOpenError,
  RevisionMismatchError,
  SessionNotFoundError,
  type SessionRegistryClient,
  status,
  TableNotFoundError,
} from "@session-registry/client";
import { Session as SessionMessage } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import type { Store, StoreLimits } from "../../src/core/store.js";
import { Barrier, behindBarrier } from "../helpers/barrier-store.js";
import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { rawError, wireDetails, type RawRegistry } from "../helpers/raw.js";
import { EventType, suiteWatches, type RecordedWatch } from "../helpers/watch.js";

type Session = Awaited<ReturnType<SessionRegistryClient["register"]>>;

const LIMITS: StoreLimits = { defaultMaxSessions: 10, maxTables: 1000, watchHistory: 10_000 };

/** The retention window the proto promises ("at least 10 minutes"), spelled out rather than imported, so that the test does not move with the code. */
const TEN_MINUTES_MS = 10 * 60 * 1000;

export type RequestMethod = "register" | "update" | "remove";

/**
 * How a store shows that it remembers a request_id for the whole retention
 * window: the memory store runs on a clock the test moves; the etcd store
 * keeps each request_id in a key on a lease whose time to live can be read.
 */
export type RetentionProbe =
  | { kind: "clock"; makeStore(limits: StoreLimits, now: () => number): Store | Promise<Store> }
  | {
      kind: "lease";
      makeStore(limits: StoreLimits): Store | Promise<Store>;
      /** Seconds the key that remembers this request_id has left to live (Infinity: no lease). */
      secondsLeft(table: string, method: RequestMethod, requestId: string): Promise<number>;
    };

export function rulesConformance(
  storeName: string,
  makeStore: (limits: StoreLimits) => Store | Promise<Store>,
  retention: RetentionProbe,
): void {
  describe(`contract rules (${storeName} store)`, () => {
    let d: TestDaemon;
    let client: SessionRegistryClient;
    let raw: RawRegistry;
    const barrier = new Barrier();
    const watch = suiteWatches(() => raw.client);

    before(async () => {
      d = await startTestDaemon({
        config: { maxSessions: LIMITS.defaultMaxSessions },
        store: behindBarrier(await makeStore(LIMITS), barrier),
      });
      client = d.client();
      raw = d.rawClient();
    });
    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      await d?.stop();
    });

    async function newTable(maxSessions = 10): Promise<string> {
      const table = uniqueName("rule");
      await client.createTable({ table, maxSessions });
      return table;
    }

    /** Clients with a channel each, so that racing calls travel side by side. */
    function channels(n: number): SessionRegistryClient[] {
      return Array.from({ length: n }, () => d.client({ channelOptions: { "grpc.use_local_subchannel_pool": 1 } }));
    }

    describe("DeleteTable", () => {
      it("ends the watches of a force-deleted table with NOT_FOUND TABLE_NOT_FOUND and sends them no REMOVED events", async () => {
        const table = await newTable();
        const a = await client.register({ id: "a", projectPath: "/a" }, { table });
        const fromSnapshot = watch(table);
        const fromRevision = watch(table, a.revision);
        await fromSnapshot.until((x) => x.messages.length >= 1, "the snapshot");
        await client.register({ id: "b", projectPath: "/b", ttlMs: 60_000 }, { table });
        // Both have had every write, so whatever else they get comes from the deletion.
        await fromSnapshot.until((x) => x.events.length >= 1, "b's event");
        await fromRevision.until((x) => x.events.length >= 2, "a's and b's events");
        await client.deleteTable(table, { force: true });
        for (const w of [fromSnapshot, fromRevision]) {
          const err = await w.ending();
          expect(err?.code).to.equal(status.NOT_FOUND);
          expect(wireDetails(err!.metadata).errorInfos[0]!.reason).to.equal("TABLE_NOT_FOUND");
        }
        const summary = (w: RecordedWatch) => w.events.map((e) => [e.type, e.session.id]);
        expect(summary(fromSnapshot)).to.deep.equal([[EventType.EVENT_TYPE_REGISTERED, "b"]]);
        expect(summary(fromRevision)).to.deep.equal([
          [EventType.EVENT_TYPE_REGISTERED, "a"],
          [EventType.EVENT_TYPE_REGISTERED, "b"],
        ]);
      });
    });

    describe("Update with an empty update_mask", () => {
      /** An Update with an empty mask and just the given fields populated. */
      async function update(table: string, fields: Partial<SessionMessage> & { id: string }): Promise<SessionMessage> {
        const res = await raw.update({
          requestId: "",
          table,
          session: SessionMessage.fromPartial(fields),
          updateMask: [],
          expectedRevision: 0,
        });
        return res.session!;
      }

      it("changes every populated field and keeps every unpopulated one", async () => {
        const table = await newTable();
        const s = (
          await raw.register({
            requestId: "",
            table,
            session: SessionMessage.fromPartial({
              id: "e",
              name: "orig",
              projectPath: "/empty/orig",
              metadata: new Map([["a", "1"]]),
              ttl: { seconds: 3600, nanos: 0 },
            }),
          })
        ).session!;

        const named = await update(table, { id: "e", name: "renamed" });
        expect(named).to.include({ name: "renamed", projectPath: "/empty/orig" });
        expect(named.metadata).to.deep.equal(s.metadata);
        expect(named.ttl).to.deep.equal(s.ttl);
        expect(named.expireTime).to.deep.equal(s.expireTime);

        const labelled = await update(table, { id: "e", metadata: new Map([["b", "2"]]) });
        expect(labelled).to.include({ name: "renamed", projectPath: "/empty/orig" });
        expect(labelled.metadata).to.deep.equal(new Map([["b", "2"]]));
        expect(labelled.ttl).to.deep.equal(s.ttl);

        // The name stays: it is derived from the path only when the request asks for it.
        const moved = await update(table, { id: "e", projectPath: "/empty/moved" });
        expect(moved).to.include({ name: "renamed", projectPath: "/empty/moved" });
        expect(moved.metadata).to.deep.equal(new Map([["b", "2"]]));
        expect(moved.ttl).to.deep.equal(s.ttl);

        const longer = await update(table, { id: "e", ttl: { seconds: 7200, nanos: 0 } });
        expect(longer).to.include({ name: "renamed", projectPath: "/empty/moved" });
        expect(longer.metadata).to.deep.equal(new Map([["b", "2"]]));
        expect(longer.ttl).to.deep.equal({ seconds: 7200, nanos: 0 });

        const all = await update(table, {
          id: "e",
          name: "all",
          projectPath: "/empty/all",
          metadata: new Map([["c", "3"]]),
          ttl: { seconds: 60, nanos: 0 },
        });
        expect(all).to.include({ name: "all", projectPath: "/empty/all" });
        expect(all.metadata).to.deep.equal(new Map([["c", "3"]]));
        expect(all.ttl).to.deep.equal({ seconds: 60, nanos: 0 });
        expect((await raw.lookup({ table, key: { $case: "id", value: "e" } })).session).to.deep.equal(all);
      });
    });

    describe("project path uniqueness under concurrent updates", () => {
      const ROUNDS = 5;
      const RACERS = 12;

      it("moves exactly one of many sessions racing to one new path; the others get PROJECT_ALREADY_OPEN", async () => {
        const table = await newTable(RACERS);
        for (let i = 0; i < RACERS; i++) await client.register({ id: `m${i}`, projectPath: `/home/m${i}` }, { table });
        const cs = channels(4);
        for (let round = 0; round < ROUNDS; round++) {
          const target = `/contested/${round}`;
          barrier.arm(RACERS, ["update"]);
          const results = await Promise.allSettled(
            Array.from({ length: RACERS }, (_, i) => cs[i % cs.length]!.update({ table, id: `m${i}`, projectPath: target })),
          );
          const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
          expect(won, `round ${round}: winners`).to.have.length(1);
          for (const r of results) {
            if (r.status === "fulfilled") continue;
            expect(r.reason).to.be.instanceOf(ProjectAlreadyOpenError);
            expect((r.reason as ProjectAlreadyOpenError).sessionId).to.equal(won[0]!.id);
            expect((r.reason as ProjectAlreadyOpenError).projectPath).to.equal(target);
          }
          expect((await client.lookup({ projectPath: target }, { table })).id).to.equal(won[0]!.id);
          const paths = (await client.listPage({ table })).sessions.map((s) => s.projectPath);
          expect(paths).to.have.length(RACERS);
          expect(new Set(paths).size, `round ${round}: one path per session`).to.equal(RACERS);
        }
      });

      it("gives a path to exactly one of an Update and a Register racing for it", async () => {
        const table = await newTable(RACERS * (ROUNDS + 1));
        for (let i = 0; i < RACERS; i++) await client.register({ id: `u${i}`, projectPath: `/start/u${i}` }, { table });
        const cs = channels(4);
        for (let round = 0; round < ROUNDS; round++) {
          barrier.arm(2 * RACERS, ["register", "update"]);
          // Each pair races for a path of its own; half send the Update first, half the Register.
          const pairs = Array.from({ length: RACERS }, (_, i) => {
            const path = `/race/${round}/${i}`;
            const c = cs[i % cs.length]!;
            const up = () => c.update({ table, id: `u${i}`, projectPath: path });
            const reg = () => c.register({ id: `r${round}-${i}`, projectPath: path }, { table });
            if (i % 2 === 0) {
              const u = up();
              return { path, update: u, register: reg() };
            }
            const r = reg();
            return { path, update: up(), register: r };
          });
          const settled = await Promise.all(pairs.map((p) => Promise.allSettled([p.update, p.register])));
          for (const [i, [u, r]] of settled.entries()) {
            const where = `round ${round}, pair ${i}`;
            expect(
              [u, r].filter((x) => x.status === "fulfilled"),
              `${where}: winners`,
            ).to.have.length(1);
            const [winner, lost] = u.status === "fulfilled" ? [`u${i}`, r] : [`r${round}-${i}`, u];
            expect(lost.status, where).to.equal("rejected");
            const reason = (lost as PromiseRejectedResult).reason as unknown;
            expect(reason, where).to.be.instanceOf(ProjectAlreadyOpenError);
            expect((reason as ProjectAlreadyOpenError).sessionId, where).to.equal(winner);
            expect((await client.lookup({ projectPath: pairs[i]!.path }, { table })).id, where).to.equal(winner);
          }
          const paths = (await client.listPage({ table, pageSize: 1000 })).sessions.map((s) => s.projectPath);
          expect(new Set(paths).size, `round ${round}: one path per session`).to.equal(paths.length);
        }
      });
    });

    describe("request_ids", () => {
      it("records nothing for a failed Update: retried once the cause is gone, it applies", async () => {
        const table = await newTable();
        const a = await client.register({ id: "a", projectPath: "/a" }, { table });
        await client.register({ id: "b", projectPath: "/b" }, { table });

        await expectError(client.update({ table, id: "a", projectPath: "/b", requestId: "move" }), ProjectAlreadyOpenError);
        await client.remove("b", { table });
        const moved = await client.update({ table, id: "a", projectPath: "/b", requestId: "move" });
        expect(moved.projectPath).to.equal("/b");
        expect(moved.revision).to.be.greaterThan(a.revision);

        await expectError(
          client.update({ table, id: "a", name: "cas", expectedRevision: a.revision, requestId: "cas" }),
          RevisionMismatchError,
        );
        const renamed = await client.update({ table, id: "a", name: "cas", expectedRevision: moved.revision, requestId: "cas" });
        expect(renamed.name).to.equal("cas");
        expect(renamed.revision).to.be.greaterThan(moved.revision);

        await expectError(client.update({ table, id: "late", name: "found", requestId: "late" }), SessionNotFoundError);
        await client.register({ id: "late", projectPath: "/late" }, { table });
        const found = await client.update({ table, id: "late", name: "found", requestId: "late" });
        expect(found.name).to.equal("found");
        expect(await client.lookup({ id: "late" }, { table })).to.deep.equal(found);
      });

      it("records nothing for a Remove with allow_missing that found nothing: a later one with its request_id removes", async () => {
        const table = await newTable();
        expect(await client.remove("late", { table, allowMissing: true, requestId: "rm-late" })).to.equal(undefined);
        const s = await client.register({ id: "late", projectPath: "/late" }, { table });
        expect(await client.remove("late", { table, allowMissing: true, requestId: "rm-late" })).to.deep.equal(s);
        expect((await client.getTable(table)).sessionCount).to.equal(0);
        // That one did remove, so it is remembered.
        expect(await client.remove("late", { table, allowMissing: true, requestId: "rm-late" })).to.deep.equal(s);
      });

      it("returns the first result to a repeated Register even after its session expired", async () => {
        const table = await newTable();
        const w = watch(table);
        await w.until((x) => x.messages.length >= 1, "the snapshot");
        const first = await client.register({ id: "short", projectPath: "/short", ttlMs: 1000, requestId: "expiring" }, { table });
        await w.until((x) => x.events.some((e) => e.type === EventType.EVENT_TYPE_EXPIRED), "the EXPIRED event");
        const again = await client.register({ id: "short", projectPath: "/short", ttlMs: 1000, requestId: "expiring" }, { table });
        expect(again).to.deep.equal(first);
        expect((await client.getTable(table)).sessionCount, "the repeat registers nothing").to.equal(0);
        await expectError(client.lookup({ id: "short" }, { table }), SessionNotFoundError);
      });

      /** A Register, an Update and a Remove with request_ids R, U and D in `table`; their results. */
      async function writeWithRequestIds(on: SessionRegistryClient, table: string): Promise<{ r: Session; u: Session; d: Session }> {
        const r = await on.register({ id: "a", projectPath: "/a", requestId: "R" }, { table });
        const u = await on.update({ table, id: "a", name: "renamed", requestId: "U" });
        await on.register({ id: "b", projectPath: "/b" }, { table });
        const d = (await on.remove("b", { table, requestId: "D" }))!;
        return { r, u, d };
      }

      it("checks validation and the table's existence before the request_id: INVALID_ARGUMENT, TABLE_NOT_FOUND", async () => {
        const table = await newTable();
        await writeWithRequestIds(client, table);

        const register = await rawError(
          raw.register({ requestId: "R", table, session: SessionMessage.fromPartial({ id: "a", projectPath: "not/absolute" }) }),
        );
        expect(register.code).to.equal(status.INVALID_ARGUMENT);
        const update = await rawError(
          raw.update({
            requestId: "U",
            table,
            session: SessionMessage.fromPartial({ id: "a", name: "renamed" }),
            updateMask: ["create_time"],
            expectedRevision: 0,
          }),
        );
        expect(update.code).to.equal(status.INVALID_ARGUMENT);
        const remove = await rawError(raw.remove({ requestId: "D", table, id: "not an id", expectedRevision: 0, allowMissing: false }));
        expect(remove.code).to.equal(status.INVALID_ARGUMENT);
        expect(
          [register, update, remove].map((e) => wireDetails(e.metadata).badRequests[0]!.fieldViolations.map((v) => v.field)),
        ).to.deep.equal([["session.project_path"], ["update_mask"], ["id"]]);

        await client.deleteTable(table, { force: true });
        await expectError(client.register({ id: "a", projectPath: "/a", requestId: "R" }, { table }), TableNotFoundError);
        await expectError(client.update({ table, id: "a", name: "renamed", requestId: "U" }), TableNotFoundError);
        await expectError(client.remove("b", { table, requestId: "D" }), TableNotFoundError);
      });

      it("forgets a table's request_ids when the table is deleted", async () => {
        const table = await newTable();
        const before = await writeWithRequestIds(client, table);
        await client.deleteTable(table, { force: true });
        await client.createTable({ table });

        const r = await client.register({ id: "c", projectPath: "/c", requestId: "R" }, { table });
        expect(r.id, "a new Register").to.equal("c");
        await client.register({ id: "a", projectPath: "/a" }, { table });
        const u = await client.update({ table, id: "a", name: "again", requestId: "U" });
        expect(u.name, "a new Update").to.equal("again");
        const b = await client.register({ id: "b", projectPath: "/b" }, { table });
        const d = await client.remove("b", { table, requestId: "D" });
        expect(d, "a new Remove").to.deep.equal(b);
        expect(d!.revision).to.not.equal(before.d.revision);
        expect((await client.getTable(table)).sessionCount).to.equal(2);
      });

      it("remembers request_ids for at least 10 minutes", async () => {
        let clock = Date.now();
        const store = retention.kind === "clock" ? await retention.makeStore(LIMITS, () => clock) : await retention.makeStore(LIMITS);
        const own = await startTestDaemon({ config: { maxSessions: LIMITS.defaultMaxSessions }, store });
        try {
          const c = own.client();
          const table = uniqueName("rule");
          await c.createTable({ table });
          const startedAt = Date.now();
          const first = await writeWithRequestIds(c, table);
          if (retention.kind === "lease") {
            // Time since the writes counts against what is left.
            const spent = Math.ceil((Date.now() - startedAt) / 1000);
            for (const [method, requestId] of [
              ["register", "R"],
              ["update", "U"],
              ["remove", "D"],
            ] as const) {
              expect(await retention.secondsLeft(table, method, requestId), `${method} ${requestId}`).to.be.at.least(
                TEN_MINUTES_MS / 1000 - spent,
              );
            }
            return;
          }
          clock += TEN_MINUTES_MS - 1;
          expect(await c.register({ id: "a", projectPath: "/a", requestId: "R" }, { table })).to.deep.equal(first.r);
          expect(await c.update({ table, id: "a", name: "renamed", requestId: "U" })).to.deep.equal(first.u);
          expect(await c.remove("b", { table, requestId: "D" })).to.deep.equal(first.d);
        } finally {
          await own.stop();
        }
      });
    });

    describe("SESSION_NOT_FOUND", () => {
      it("carries the key the Lookup asked for: session_id, project_path or name", async () => {
        const table = await newTable();
        await client.register({ id: "there", name: "There", projectPath: "/there" }, { table });
        const cases = [
          { key: { $case: "id", value: "ghost" } as const, metadata: { table, session_id: "ghost" } },
          { key: { $case: "projectPath", value: "/no/such/path" } as const, metadata: { table, project_path: "/no/such/path" } },
          { key: { $case: "name", value: "No Such Name" } as const, metadata: { table, name: "No Such Name" } },
        ];
        for (const { key, metadata } of cases) {
          const err = await rawError(raw.lookup({ table, key }));
          expect(err.code).to.equal(status.NOT_FOUND);
          const info = wireDetails(err.metadata).errorInfos[0]!;
          expect(info.reason).to.equal("SESSION_NOT_FOUND");
          expect(Object.fromEntries(info.metadata), key.$case).to.deep.equal(metadata);
        }
      });
    });

    describe("List", () => {
      it("refuses a page token of another table with INVALID_ARGUMENT on page_token", async () => {
        const a = await newTable();
        const b = await newTable();
        for (const table of [a, b]) {
          for (let i = 1; i <= 3; i++) await client.register({ id: `s${i}`, projectPath: `/p/s${i}` }, { table });
        }
        const page = await client.listPage({ table: a, pageSize: 1 });
        expect(page.nextPageToken).to.not.equal("");
        const err = await expectError(client.listPage({ table: b, pageSize: 1, pageToken: page.nextPageToken }), InvalidArgumentError);
        expect(err.fieldViolations.map((v) => v.field)).to.deep.equal(["page_token"]);
        const next = await client.listPage({ table: a, pageSize: 1, pageToken: page.nextPageToken });
        expect(next.sessions.map((s) => s.id)).to.deep.equal(["s2"]);
      });
    });
  });
}
