/**
 * The read cache's probe of etcd's revision (src/store/etcd/revision-probe.ts),
 * which speaks to etcd over a node:http2 connection of its own rather than
 * through etcd3: against a real etcd it answers etcd's current revision, moves
 * on to the next endpoint when one fails, gives up at its deadline, speaks
 * TLS with a client certificate, and fails as the rest of the store does,
 * in the same words.
 */
import { once } from "node:events";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer, type Server, type Socket } from "node:net";
import { BinaryReader } from "@bufbuild/protobuf/wire";
import { expect } from "chai";

import { RegistryError } from "../../src/core/errors.js";
import type { StoreLimits } from "../../src/core/store.js";
import { createClient } from "../../src/store/etcd/client.js";
import { Keys } from "../../src/store/etcd/keys.js";
import { EtcdKv, type EtcdKvOptions } from "../../src/store/etcd/kv.js";
import { headerRevision, rangeCountOnly } from "../../src/store/etcd/revision-probe.js";
import { EtcdStore } from "../../src/store/etcd/store.js";
import { makeTestCerts, type TestCerts } from "../daemon/certs.js";
import { startEtcd, suiteEtcd, uniquePrefix, type TestEtcd } from "../helpers/etcd.js";

/** A field's number in one message of etcd's own rpc.proto (the one the etcd3 client is built from). */
function fieldNumber(message: string, field: string): number {
  const proto = readFileSync(createRequire(import.meta.url).resolve("etcd3/proto/rpc.proto"), "utf8");
  const body = new RegExp(`message ${message} \\{([\\s\\S]*?)\\n\\}`).exec(proto)?.[1];
  const m = new RegExp(`\\s${field} = (\\d+);`).exec(body ?? "");
  if (m === null) throw new Error(`no field ${field} in message ${message} of etcd's rpc.proto`);
  return Number(m[1]);
}

const LIMITS: StoreLimits = { defaultMaxSessions: 100, maxTables: 100, watchHistory: 1000 };

/** Registers a session through `store`, then looks it up from the read cache: one probe, no read of etcd. Closes the store. */
async function expectLookupFromCache(store: EtcdStore): Promise<void> {
  try {
    await store.createTable("t", undefined);
    await store.register("t", { id: "s1", name: "n", projectPath: "/p", metadata: new Map(), ttl: undefined });
    expect(await store.readCacheReady()).to.equal(true);
    const before = store.calls();
    expect((await store.lookup("t", { by: "id", value: "s1" })).id).to.equal("s1");
    const after = store.calls();
    expect(after.probes - before.probes).to.equal(1);
    expect(after.reads - before.reads).to.equal(0);
  } finally {
    await store.close();
  }
}

/** The STORE_UNAVAILABLE error `p` rejects with. */
async function storeError(p: Promise<unknown>): Promise<RegistryError> {
  try {
    await p;
  } catch (err) {
    expect(err).to.be.instanceOf(RegistryError);
    expect((err as RegistryError).reason).to.equal("STORE_UNAVAILABLE");
    return err as RegistryError;
  }
  throw new Error("expected STORE_UNAVAILABLE, got an answer");
}

describe("etcd: the read cache's revision probe", function () {
  this.timeout(30_000);
  const etcd = suiteEtcd();
  const open: EtcdKv[] = [];
  const kvOf = (options: Partial<EtcdKvOptions> = {}): EtcdKv => {
    const kv = new EtcdKv(new Keys(uniquePrefix()), { endpoints: [etcd().endpoint], ...options });
    open.push(kv);
    return kv;
  };
  afterEach(() => {
    for (const kv of open.splice(0)) kv.close();
  });

  it("answers etcd's revision as of the probe: each write's, however many came before", async () => {
    const kv = kvOf();
    for (let i = 0; i < 20; i++) {
      const put = await kv.client.kv.put({ key: Buffer.from(`${kv.keys.prefix}k${i}`), value: Buffer.from("v") });
      expect(await kv.revision()).to.equal(Number(put.header.revision));
    }
    expect(kv.calls.probes).to.equal(20);
  });

  it("moves on to the next endpoint once one fails, and says which failed and why", async () => {
    const kv = kvOf({ endpoints: ["http://127.0.0.1:1", etcd().endpoint] });
    const err = await storeError(kv.revision());
    expect(err.message).to.include("etcd at http://127.0.0.1:1, ").and.include("is unreachable (connection refused)");
    // The write through a client of the live endpoint alone (etcd3 picks its host at random).
    const writer = kvOf();
    const put = await writer.client.kv.put({ key: Buffer.from(`${writer.keys.prefix}k`), value: Buffer.from("v") });
    expect(await kv.revision()).to.equal(Number(put.header.revision));
  });

  describe("against a peer that accepts the connection and never answers", () => {
    let silent: Server;
    const sockets: Socket[] = [];
    before(async () => {
      // Reads what comes (and so hears the other end close), answers nothing.
      silent = createServer((socket) => sockets.push(socket.resume()));
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    });
    after(async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => silent.close(resolve));
    });

    it("gives up at the request timeout, then connects anew for the next probe", async () => {
      const { port } = silent.address() as { port: number };
      const kv = kvOf({ endpoints: [`http://127.0.0.1:${port}`], requestTimeoutMs: 300 });
      const err = await storeError(kv.revision());
      expect(err.message).to.equal(`the session store is unavailable: etcd at http://127.0.0.1:${port} did not answer in time`);
      // The stuck connection was dropped, and the next probe opened another.
      const first = sockets[0]!;
      if (!first.destroyed) await once(first, "close");
      await storeError(kv.revision());
      expect(sockets).to.have.length(2);
    });
  });

  it("after close: fails as a closed store does", async () => {
    const kv = kvOf();
    await kv.revision();
    kv.close();
    const err = await storeError(kv.revision());
    expect(err.message).to.include("is closed: the daemon is shutting down");
  });

  it("asks for what etcd's rpc.proto calls key and count_only, and nothing else (a linearizable read)", () => {
    const reader = new BinaryReader(rangeCountOnly(Buffer.from("/p/epoch")));
    const fields = new Map<number, unknown>();
    while (reader.pos < reader.len) {
      const [no] = reader.tag();
      fields.set(no, no === fieldNumber("RangeRequest", "key") ? Buffer.from(reader.bytes()).toString() : reader.bool());
    }
    expect([...fields]).to.deep.equal([
      [fieldNumber("RangeRequest", "key"), "/p/epoch"],
      [fieldNumber("RangeRequest", "count_only"), true],
    ]);
  });

  it("reads the revision out of etcd's answer, and nothing out of bytes that are not one", () => {
    expect([fieldNumber("RangeResponse", "header"), fieldNumber("ResponseHeader", "revision")]).to.deep.equal([1, 3]);
    // RangeResponse { header { cluster_id: 1, revision: 300 } }, framed.
    const header = Buffer.from([0x08, 0x01, 0x18, 0xac, 0x02]);
    const message = Buffer.concat([Buffer.from([0x0a, header.length]), header]);
    const framed = Buffer.concat([Buffer.from([0, 0, 0, 0, message.length]), message]);
    expect(headerRevision(framed)).to.equal(300);
    expect(headerRevision(framed.subarray(0, framed.length - 1))).to.equal(undefined);
    expect(headerRevision(Buffer.from([0, 0, 0, 0, 2, 0x0a, 0x00]))).to.equal(undefined);
    expect(headerRevision(Buffer.from([1, 0, 0, 0, 0]))).to.equal(undefined);
    expect(headerRevision(Buffer.from([0, 0, 0, 0, 3, 0x0a, 0x05, 0x18]))).to.equal(undefined);
  });
});

describe("etcd over TLS with client certificates: the probe and the read cache", function () {
  this.timeout(30_000);
  let certs: TestCerts;
  let etcd: TestEtcd;
  before(async () => {
    certs = await makeTestCerts();
    etcd = await startEtcd({
      tls: {
        certFile: certs.server.certPath,
        keyFile: certs.server.keyPath,
        clientCaFile: certs.ca.certPath,
        ca: certs.ca.cert,
        clientCert: certs.client.cert,
        clientKey: certs.client.key,
      },
    });
  });
  after(async () => {
    await etcd.stop();
    await certs.remove();
  });

  it("serves Lookups from the read cache, each batch after a probe over TLS", async () => {
    const store = new EtcdStore(LIMITS, {
      endpoints: [etcd.endpoint],
      prefix: uniquePrefix(),
      tls: { ca: certs.ca.cert, cert: certs.client.cert, key: certs.client.key },
    });
    await expectLookupFromCache(store);
  });

  it("says the TLS handshake failed when etcd's certificate is not of the CA given", async () => {
    const kv = new EtcdKv(new Keys(uniquePrefix()), {
      endpoints: [etcd.endpoint],
      tls: { ca: certs.otherCa.cert, cert: certs.client.cert, key: certs.client.key },
    });
    try {
      const err = await storeError(kv.revision());
      expect(err.message).to.equal(
        `the session store is unavailable: etcd at ${etcd.endpoint} is unreachable (the TLS handshake failed; check --etcd-ca, --etcd-cert and --etcd-key)`,
      );
    } finally {
      kv.close();
    }
  });
});

describe("etcd with authentication: the probe goes through the etcd client, which holds the token", function () {
  this.timeout(30_000);
  let etcd: TestEtcd;
  const auth = { username: "root", password: "probe-test-password" };
  before(async () => {
    etcd = await startEtcd();
    const admin = createClient({ endpoints: [etcd.endpoint] });
    try {
      await admin.user(auth.username).create(auth.password);
      await admin.user(auth.username).addRole("root");
      await admin.auth.authEnable();
    } finally {
      admin.close();
    }
  });
  after(async () => {
    await etcd.stop();
  });

  it("serves Lookups from the read cache, each batch after a probe with the token", async () => {
    const store = new EtcdStore(LIMITS, { endpoints: [etcd.endpoint], prefix: uniquePrefix(), auth });
    await expectLookupFromCache(store);
  });

  it("a probe without the token is refused, in words that name the credentials", async () => {
    const kv = new EtcdKv(new Keys(uniquePrefix()), { endpoints: [etcd.endpoint], auth: { ...auth, password: "wrong" } });
    try {
      const err = await storeError(kv.revision());
      expect(err.message).to.include("refused the daemon's credentials (check --etcd-user and --etcd-password)");
    } finally {
      kv.close();
    }
  });
});
