/**
 * The SDK's own behaviour that the contract suite does not reach: argument
 * checks before any call, and transport failures (deadline, closed client, no
 * server) surfacing as the base SessionRegistryError with the gRPC code.
 * Everything runs against a real daemon, or a real socket that never answers.
 */
import { createServer, type Server, type Socket } from "node:net";
import { expect } from "chai";
import { status } from "@grpc/grpc-js";
import { SessionLimitReachedError, SessionRegistryClient, SessionRegistryError } from "@session-registry/client";

import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../../../test/helpers/daemon.js";

describe("SessionRegistryClient (SDK)", () => {
  let d: TestDaemon;
  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  it("rejects a lookup with no key or several keys with a TypeError, before any call", async () => {
    const client = d.client();
    for (const key of [{}, { id: "a", name: "b" }, { id: "a", projectPath: "/p", name: "n" }]) {
      const err = await expectError(client.lookup(key as never), TypeError);
      expect(err.message).to.match(/exactly one of id, projectPath or name/);
    }
  });

  it("decodes a limit error from a real daemon into SessionLimitReachedError with numbers", async () => {
    const client = d.client();
    const table = uniqueName();
    await client.createTable({ table, maxSessions: 1 });
    await client.register({ projectPath: "/one" }, { table });
    const err = await expectError(client.register({ projectPath: "/two" }, { table }), SessionLimitReachedError);
    expect(err.code).to.equal(status.RESOURCE_EXHAUSTED);
    expect(err.current).to.equal(1);
    expect(err.max).to.equal(1);
    expect(err.details).to.match(/maximum sessions reached \(1\/1/);
  });

  it("converts ttlMs to a Duration with millisecond precision", async () => {
    const client = d.client();
    const s = await client.register({ projectPath: `/${uniqueName("ttl")}`, ttlMs: 1500 });
    expect(s.ttl).to.deep.equal({ seconds: 1, nanos: 500_000_000 });
  });

  it("rejects with CANCELLED after close()", async () => {
    const client = new SessionRegistryClient(d.address);
    client.close();
    const err = await expectError(client.listTables(), SessionRegistryError);
    expect(err.code).to.equal(status.CANCELLED);
  });

  it("rejects with UNAVAILABLE and no reason when nothing listens", async () => {
    // Bind a port, then free it: nothing listens there, so the connection is refused at once.
    const port = await freePort();
    const client = new SessionRegistryClient(`127.0.0.1:${port}`, { timeoutMs: 5_000 });
    try {
      const err = await expectError(client.listTables(), SessionRegistryError);
      expect(err.constructor).to.equal(SessionRegistryError);
      expect(err.code).to.equal(status.UNAVAILABLE);
      expect(err.reason).to.equal("");
    } finally {
      client.close();
    }
  });

  describe("against a peer that accepts connections and never answers", () => {
    let silent: Server;
    const sockets = new Set<Socket>();
    before(async () => {
      silent = createServer((socket) => {
        sockets.add(socket);
        socket.on("close", () => sockets.delete(socket));
      });
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    });
    after(async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => silent.close(() => resolve()));
    });

    it("rejects with DEADLINE_EXCEEDED as the base error when the deadline passes", async () => {
      const { port } = silent.address() as { port: number };
      const client = new SessionRegistryClient(`127.0.0.1:${port}`, { timeoutMs: 200 });
      try {
        const err = await expectError(client.getTable(), SessionRegistryError);
        expect(err.constructor).to.equal(SessionRegistryError);
        expect(err.code).to.equal(status.DEADLINE_EXCEEDED);
      } finally {
        client.close();
      }
    });
  });
});

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address() as { port: number };
      probe.close(() => resolve(port));
    });
  });
}
