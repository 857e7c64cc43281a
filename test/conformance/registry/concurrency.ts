/**
 * The contract under concurrent calls from several channels: the session
 * limit, a project path, an id and an expected revision each admit exactly
 * the winners they promise.
 */
import { expect } from "chai";
import {
  ProjectAlreadyOpenError,
  RevisionMismatchError,
  SessionExistsError,
  SessionLimitReachedError,
  type SessionRegistryClient,
} from "@session-registry/client";

import { ids, type RegistryFixture, type Session } from "./fixture.js";

export function concurrencyTests(fx: RegistryFixture): void {
  describe("under concurrency", () => {
    /** Clients with a channel each, so that calls really travel side by side. */
    function channels(n: number): SessionRegistryClient[] {
      return Array.from({ length: n }, () => fx.daemon.client({ channelOptions: { "grpc.use_local_subchannel_pool": 1 } }));
    }

    it("admits exactly 10 of 500 concurrent registers at a table with limit 10", async () => {
      const table = await fx.newTable(10);
      const cs = channels(5);
      const results = await Promise.allSettled(
        Array.from({ length: 500 }, (_, i) => cs[i % cs.length]!.register({ id: `c${i}`, projectPath: `/race/${i}` }, { table })),
      );
      const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
      expect(won).to.have.length(10);
      expect(lost).to.have.length(490);
      for (const reason of lost) {
        expect(reason).to.be.instanceOf(SessionLimitReachedError);
        expect((reason as SessionLimitReachedError).max).to.equal(10);
        expect((reason as SessionLimitReachedError).current).to.equal(10);
      }
      expect((await fx.client.getTable(table)).sessionCount).to.equal(10);
      const listed = (await fx.client.listPage({ table })).sessions;
      expect(listed).to.have.length(10);
      expect(new Set(listed.map((s) => s.projectPath)).size).to.equal(10);
      expect(ids(listed).sort()).to.deep.equal(ids(won).sort());
    });

    it("gives one project path to exactly one of 100 concurrent registers", async () => {
      const table = await fx.newTable(1000);
      const cs = channels(4);
      const results = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) => cs[i % cs.length]!.register({ id: `p${i}`, projectPath: "/contested" }, { table })),
      );
      const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
      expect(won).to.have.length(1);
      const winner = won[0]!.id;
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        expect(r.reason).to.be.instanceOf(ProjectAlreadyOpenError);
        expect((r.reason as ProjectAlreadyOpenError).sessionId).to.equal(winner);
      }
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
      expect((await fx.client.lookup({ projectPath: "/contested" }, { table })).id).to.equal(winner);
    });

    it("gives one id to exactly one of 100 concurrent registers", async () => {
      const table = await fx.newTable(1000);
      const cs = channels(4);
      const results = await Promise.allSettled(
        Array.from({ length: 100 }, (_, i) => cs[i % cs.length]!.register({ id: "the-id", projectPath: `/same-id/${i}` }, { table })),
      );
      const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
      expect(won).to.have.length(1);
      for (const r of results) {
        if (r.status === "fulfilled") continue;
        expect(r.reason).to.be.instanceOf(SessionExistsError);
        expect((r.reason as SessionExistsError).sessionId).to.equal("the-id");
      }
      expect((await fx.client.getTable(table)).sessionCount).to.equal(1);
      expect((await fx.client.lookup({ id: "the-id" }, { table })).projectPath).to.equal(won[0]!.projectPath);
    });

    it("lets exactly one of many concurrent updates at one expected revision win", async () => {
      const table = await fx.newTable();
      const s = await fx.client.register({ id: "cas", projectPath: "/cas" }, { table });
      const cs = channels(4);
      const results = await Promise.allSettled(
        Array.from({ length: 40 }, (_, i) => cs[i % cs.length]!.update({ table, id: "cas", name: `n${i}`, expectedRevision: s.revision })),
      );
      const won = results.filter((r): r is PromiseFulfilledResult<Session> => r.status === "fulfilled").map((r) => r.value);
      expect(won).to.have.length(1);
      for (const r of results) {
        if (r.status === "rejected") expect(r.reason).to.be.instanceOf(RevisionMismatchError);
      }
      expect(await fx.client.lookup({ id: "cas" }, { table })).to.deep.equal(won[0]);
    });
  });
}
