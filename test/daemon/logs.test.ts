/**
 * The daemon's logs: pino JSON lines, as a person or a log shipper reads
 * them, from the logger itself and from a real daemon (start-up, a rejected
 * call, an internal error, refused credentials, shutdown). No token and no
 * payload in any line.
 */
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

import { expect } from "chai";
import { SessionRegistryClient, SessionRegistryError, SessionLimitReachedError } from "@session-registry/client";
import * as grpc from "@grpc/grpc-js";

import type { LookupKey, Session } from "../../src/core/model.js";
import { DEFAULT_CONFIG } from "../../src/daemon/config.js";
import { createLogger } from "../../src/daemon/logger.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/server.js";
import { MemoryStore } from "../../src/store/memory/store.js";
import { expectError } from "../helpers/daemon.js";

type LogRecord = Record<string, unknown> & { level: string; time: string; msg: string };

function capture(level: "debug" | "info" | "warn" | "error" | "silent" = "debug") {
  const lines: string[] = [];
  const log = createLogger({ level, destination: { write: (line: string) => void lines.push(line) } });
  return { log, lines, records: () => lines.map((l) => JSON.parse(l) as LogRecord) };
}

describe("logs", () => {
  describe("createLogger", () => {
    it("writes one JSON object per line with the level's name, an ISO time and the message", () => {
      const { log, lines, records } = capture("debug");
      log.debug({ a: 1 }, "one");
      log.info({ method: "Register", table: "default" }, "two");
      log.warn({}, "three");
      log.error({ n: 2n }, "four");
      expect(lines).to.have.length(4);
      for (const line of lines) expect(line.endsWith("\n") && line.indexOf("\n") === line.length - 1).to.equal(true);
      const [one, two, three, four] = records();
      expect([one!.level, two!.level, three!.level, four!.level]).to.deep.equal(["debug", "info", "warn", "error"]);
      expect(two).to.include({ msg: "two", method: "Register", table: "default" });
      expect(new Date(two!.time).toISOString()).to.equal(two!.time);
      expect(two!.pid).to.equal(process.pid);
    });

    it("drops lines below its level, and writes nothing when silent", () => {
      const info = capture("info");
      info.log.debug({}, "hidden");
      info.log.info({}, "shown");
      expect(info.records().map((r) => r.msg)).to.deep.equal(["shown"]);
      const error = capture("error");
      error.log.warn({}, "hidden");
      error.log.error({}, "shown");
      expect(error.records().map((r) => r.msg)).to.deep.equal(["shown"]);
      const silent = capture("silent");
      silent.log.error({}, "hidden");
      expect(silent.lines).to.deep.equal([]);
    });

    it("writes an Error under err with its type, message, stack and cause", () => {
      const { log, records } = capture();
      const cause = new RangeError("inner");
      log.error({ err: new Error("outer", { cause }) }, "failed");
      const { err } = records()[0] as unknown as { err: { type: string; message: string; stack: string; cause?: { message: string } } };
      expect(err.type).to.equal("Error");
      expect(err.message).to.match(/^outer/);
      expect(err.stack).to.match(/^Error: outer\n\s+at /);
      expect(err.stack).to.include("logs.test");
      expect(JSON.stringify(err)).to.include("inner");
    });

    it("censors authorization and token fields wherever a caller puts them", () => {
      const { log, lines, records } = capture();
      log.info(
        {
          authorization: "Bearer secret-1-0123456789abcdef",
          token: "secret-2-0123456789abcdef",
          client: { token: "secret-3-0123456789abcdef", authorization: "Bearer secret-4-0123456789abcdef" },
          tokens: ["secret-5-0123456789abcdef"],
          metadata: { authorization: "Bearer secret-6-0123456789abcdef" },
        },
        "careless",
      );
      expect(lines.join("")).not.to.include("secret-");
      const r = records()[0]!;
      expect(r.authorization).to.equal("[redacted]");
      expect(r.client).to.deep.equal({ token: "[redacted]", authorization: "[redacted]" });
    });

    it("leaves a secret's field absent or null when there is no secret, rather than claiming one", () => {
      const { log, records } = capture();
      log.info({ token: undefined, client: { password: null }, config: { etcdPassword: undefined, etcdUser: undefined } }, "unset");
      const r = records()[0]!;
      expect(r).not.to.have.property("token");
      expect(r.client).to.deep.equal({ password: null });
      expect(r.config).to.deep.equal({});
    });
  });

  describe("a daemon's", () => {
    const TOKEN = "logs-admin-0123456789abcdef";
    const WRONG = "logs-wrong-0123456789abcdef";
    let dir: string;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), "sr-logs-"));
    });
    after(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    /** A store whose lookups fail the way a bug would. */
    class BrokenLookupStore extends MemoryStore {
      override lookup(_table: string, _key: LookupKey): Promise<Session> {
        return Promise.reject(new TypeError("cannot read properties of undefined (reading 'explodingLookup')"));
      }
    }

    it("start-up, rejected and failed calls, refused credentials and shutdown, with no token or payload", async () => {
      const tokens = join(dir, "tokens");
      await writeFile(tokens, `admin ${TOKEN}\n`, { mode: 0o600 });
      const { log, lines, records } = capture("info");
      const store = new BrokenLookupStore({ defaultMaxSessions: 1, maxTables: 10, watchHistory: 100 });
      let daemon: RunningDaemon | undefined;
      const clients: SessionRegistryClient[] = [];
      try {
        daemon = await startDaemon(
          { ...DEFAULT_CONFIG, listen: "127.0.0.1:0", httpListen: undefined, logLevel: "info", maxSessions: 1, authTokensFile: tokens },
          { store, logger: log },
        );
        const client = new SessionRegistryClient(daemon.address, { metadata: { authorization: `Bearer ${TOKEN}` } });
        const stranger = new SessionRegistryClient(daemon.address, { metadata: { authorization: `Bearer ${WRONG}` } });
        clients.push(client, stranger);

        await client.register({ projectPath: "/payload/first-project" });
        await expectError(client.register({ projectPath: "/payload/second-project" }), SessionLimitReachedError);
        const internal = await expectError(client.lookup({ id: "anyone" }), SessionRegistryError);
        expect(internal.code).to.equal(grpc.status.INTERNAL);
        expect(internal.message).to.not.include("explodingLookup");
        const refused = await expectError(stranger.listTables(), SessionRegistryError);
        expect(refused.code).to.equal(grpc.status.UNAUTHENTICATED);
      } finally {
        for (const c of clients) c.close();
        await daemon?.shutdown();
      }

      const all = records();
      const started = all.find((r) => r.msg === "daemon started");
      expect(started, "a start-up line").to.not.equal(undefined);
      expect(started!.level).to.equal("info");
      expect(JSON.stringify(started)).to.include(tokens); // the file's path, as configured

      const rejected = all.filter((r) => r.msg === "rpc rejected");
      expect(rejected.find((r) => r.method === "Register")).to.deep.include({
        level: "info",
        code: "RESOURCE_EXHAUSTED",
        reason: "SESSION_LIMIT_REACHED",
        table: "default",
      });
      expect(rejected.find((r) => r.method === "ListTables")).to.deep.include({
        level: "warn",
        code: "UNAUTHENTICATED",
        reason: "UNAUTHENTICATED",
      });

      const failed = all.find((r) => r.level === "error" && r.method === "Lookup");
      expect(failed, "an error line for the failed Lookup").to.not.equal(undefined);
      const err = failed!.err as { type: string; stack: string };
      expect(err.type).to.equal("TypeError");
      expect(err.stack).to.include("explodingLookup");
      expect(err.stack).to.match(/\n\s+at /);

      expect(all.some((r) => /shut/i.test(r.msg))).to.equal(true);

      for (const line of lines) {
        expect(line).not.to.include(TOKEN);
        expect(line).not.to.include(WRONG);
        expect(line).not.to.include("/payload/");
      }
    });

    it("cuts a rejected call's oversized id and table to 128 characters (they are logged before validation)", async () => {
      const { log, records } = capture("info");
      const daemon = await startDaemon(
        { ...DEFAULT_CONFIG, listen: "127.0.0.1:0", httpListen: undefined, logLevel: "info" },
        { logger: log },
      );
      const client = new SessionRegistryClient(daemon.address, { retry: false });
      try {
        await expectError(client.register({ id: "i".repeat(5000), projectPath: "/p" }, { table: "t".repeat(3000) }), SessionRegistryError);
      } finally {
        client.close();
        await daemon.shutdown();
      }
      const rejected = records().find((r) => r.msg === "rpc rejected" && r.method === "Register");
      expect(rejected, "a line for the rejected Register").to.not.equal(undefined);
      expect(rejected!.sessionId).to.equal(`${"i".repeat(128)}…`);
      expect(rejected!.table).to.equal(`${"t".repeat(128)}…`);
    });

    it("start-up: the etcd password as [redacted] when one is set, and no etcdPassword when none is", async () => {
      const PASSWORD = "logs-etcd-password-0123456789";
      const startedConfig = async (config: Partial<typeof DEFAULT_CONFIG>) => {
        const { log, lines, records } = capture("info");
        const daemon = await startDaemon(
          { ...DEFAULT_CONFIG, listen: "127.0.0.1:0", httpListen: undefined, logLevel: "info", ...config },
          { logger: log },
        );
        await daemon.shutdown();
        for (const line of lines) expect(line).not.to.include(PASSWORD);
        const started = records().find((r) => r.msg === "daemon started");
        expect(started, "a start-up line").to.not.equal(undefined);
        return started!.config as Record<string, unknown>;
      };

      const unset = await startedConfig({});
      expect(unset).to.include({ store: "memory" });
      expect(unset).not.to.have.property("etcdPassword");

      const set = await startedConfig({ etcdUser: "registry", etcdPassword: PASSWORD });
      expect(set).to.include({ etcdUser: "registry", etcdPassword: "[redacted]" });
    });
  });
});
