/**
 * The HTTP door (--http-listen) as a client with no gRPC stack sees it: plain
 * fetch speaking Connect JSON, curl and `buf curl --protocol connect`, and
 * connect's own clients for binary Connect and gRPC-Web. Its errors, reason
 * by reason, are held to gRPC's in error-reasons.test.ts.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { expect } from "chai";

import { ErrorInfoSchema } from "../../src/gen/google/rpc/error_details_pb.js";
import { SessionRegistry } from "../../src/gen/sessionregistry/v1/session_registry_pb.js";
import { spawnDaemon, waitForPort } from "../helpers/daemon-process.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { post, SERVICE, watchMessages, type ErrorJson } from "../helpers/connect-json.js";
import { envelope } from "../helpers/envelope.js";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));

function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { cwd: ROOT, timeout: 30_000 }, (err, stdout, stderr) => {
      resolve({ code: err === null ? 0 : typeof err.code === "number" ? err.code : -1, stdout, stderr });
    });
  });
}

describe("the HTTP door (Connect, gRPC-Web)", function () {
  this.timeout(60_000);
  let d: TestDaemon;
  let base: string;

  before(async () => {
    d = await startTestDaemon({ http: true, config: { maxSessions: 2 } });
    base = d.daemon.httpUrl!;
  });
  after(async () => {
    await d.stop();
  });

  it("serves every unary RPC over Connect JSON", async () => {
    expect((await post(base, "CreateTable", { table: "web", maxSessions: 3 })).json).to.nested.include({
      created: true,
      "table.name": "web",
    });
    expect((await post(base, "GetTable", { table: "web" })).json).to.nested.include({ "table.maxSessions": 3 });
    const tables = (await post(base, "ListTables", {})).json.tables as { name: string }[];
    expect(tables.map((t) => t.name)).to.include.members(["default", "web"]);
    const reg = await post(base, "Register", { table: "web", session: { id: "a", name: "alpha", projectPath: "/p/a", ttl: "60s" } });
    expect(reg.status).to.equal(200);
    expect(reg.json).to.nested.include({ "session.id": "a", "session.ttl": "60s" });
    expect((await post(base, "Lookup", { table: "web", projectPath: "/p/a" })).json).to.nested.include({ "session.name": "alpha" });
    const listed = (await post(base, "List", { table: "web" })).json;
    expect((listed.sessions as unknown[]).length).to.equal(1);
    const revision = (reg.json.session as { revision: string }).revision;
    const upd = await post(base, "Update", {
      table: "web",
      session: { id: "a", name: "renamed" },
      updateMask: "name",
      expectedRevision: revision,
    });
    expect(upd.json, JSON.stringify(upd.json)).to.nested.include({ "session.name": "renamed" });
    expect((await post(base, "KeepAlive", { table: "web", id: "a" })).json).to.nested.include({ "session.id": "a" });
    expect((await post(base, "GetServerInfo", {})).json).to.include({ store: "memory", storeAvailable: true });
    expect((await post(base, "Remove", { table: "web", id: "a" })).json).to.nested.include({ "session.id": "a" });
    expect((await post(base, "DeleteTable", { table: "web" })).status).to.equal(200);
  });

  it("streams Watch: the snapshot, then events", async () => {
    await post(base, "Register", { session: { id: "w1", projectPath: "/w/1", ttl: "60s" } });
    const watching = watchMessages(base, {}, 2);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await post(base, "Register", { session: { id: "w2", projectPath: "/w/2", ttl: "60s" } });
    const { messages } = await watching;
    expect(messages[0]).to.have.nested.property("snapshot.sessions[0].id", "w1");
    expect(messages[1]).to.nested.include({ "event.type": "EVENT_TYPE_REGISTERED", "event.session.id": "w2" });
    await post(base, "Remove", { id: "w1" });
    await post(base, "Remove", { id: "w2" });
  });

  it("streams WatchTables: every table, then each change", async () => {
    await post(base, "CreateTable", { table: "listed", maxSessions: 3 });
    const { messages } = await watchMessages(base, {}, 3, {
      method: "WatchTables",
      received: async (n) => {
        if (n === 1) await post(base, "Register", { table: "listed", session: { id: "t1", projectPath: "/t/1" } });
        if (n === 2) await post(base, "DeleteTable", { table: "listed", force: true });
      },
    });
    expect(messages[0]).to.include({ snapshot: true });
    expect((messages[0]!.tables as { name: string }[]).map((t) => t.name)).to.include.members(["default", "listed"]);
    expect(messages[1]).to.deep.include({ tables: [{ ...(messages[1]!.tables as object[])[0], name: "listed", sessionCount: 1 }] });
    expect(messages[2]).to.deep.equal({ deletedTables: ["listed"] });
  });

  it("sends a Watch's response head before its first message, with the compression it will use", async () => {
    const { table } = (await post(base, "GetTable", {})).json as unknown as { table: { revision: string; tableUid: string } };
    const next = String(Number(table.revision) + 1);
    const controller = new AbortController();
    // Resumed at the next revision: nothing to send until a change. fetch resolves on the head alone.
    const res = await fetch(`${base}/${SERVICE}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "connect-accept-encoding": "gzip" },
      body: envelope({ startRevision: next, tableUid: table.tableUid }),
      signal: controller.signal,
    });
    expect(res.status).to.equal(200);
    expect(res.headers.get("content-type")).to.equal("application/connect+json");
    expect(res.headers.get("connect-content-encoding")).to.equal("gzip");
    // The message that comes later goes out under that head: compressed (flag 1), as it promised.
    const h1 = await post(base, "Register", {
      session: { id: "h1", projectPath: "/h/1", ttl: "60s", metadata: { big: "x".repeat(2000) } },
    });
    const reader: ReadableStreamDefaultReader<Uint8Array> = res.body!.getReader();
    let bytes = new Uint8Array(0);
    while (bytes.length < 5 || bytes.length < 5 + new DataView(bytes.buffer, bytes.byteOffset).getUint32(1)) {
      const { value } = await reader.read();
      bytes = new Uint8Array([...bytes, ...value!]);
    }
    expect(bytes[0]).to.equal(1);
    const message = JSON.parse(
      new TextDecoder().decode(gunzipSync(bytes.subarray(5, 5 + new DataView(bytes.buffer).getUint32(1)))),
    ) as unknown;
    // The store's revisions are shared by its tables: the event's is the Register's, not necessarily `next`.
    const revision = (h1.json as unknown as { session: { revision: string } }).session.revision;
    expect(message).to.nested.include({ revision, "event.type": "EVENT_TYPE_REGISTERED", "event.session.id": "h1" });
    controller.abort();
    await post(base, "Remove", { id: "h1" });
  });

  it("streams Watch to connect's own clients, binary Connect and gRPC-Web, under the head sent before the first message", async () => {
    const { table } = (await post(base, "GetTable", {})).json as unknown as { table: { revision: string; tableUid: string } };
    const transports = [
      createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: true }),
      createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }),
    ];
    const controller = new AbortController();
    const streams = transports.map((t) => {
      const watch = createClient(SessionRegistry, t).watch(
        { startRevision: BigInt(table.revision) + 1n, tableUid: table.tableUid },
        { signal: controller.signal },
      );
      return watch[Symbol.asyncIterator]();
    });
    const firsts = streams.map((it) => it.next());
    const h2 = await post(base, "Register", {
      session: { id: "h2", projectPath: "/h/2", ttl: "60s", metadata: { big: "y".repeat(2000) } },
    });
    const revision = BigInt((h2.json as unknown as { session: { revision: string } }).session.revision);
    for (const first of await Promise.all(firsts)) {
      const message = first.done === true ? undefined : first.value;
      expect(message?.kind.case).to.equal("event");
      expect(message?.revision).to.equal(revision);
    }
    controller.abort();
    await post(base, "Remove", { id: "h2" });
  });

  it("ends a Watch from a revision not yet reached with the same error as gRPC, in the end-of-stream message", async () => {
    const { end } = await watchMessages(base, { startRevision: "999999" }, 1);
    expect(end).to.nested.include({ "error.code": "out_of_range" });
  });

  it("refuses garbage with clear errors and keeps serving: a bad body, a truncated one, a huge one, a wrong content type", async () => {
    expect((await post(base, "List", "{not json")).json.code).to.equal("invalid_argument");
    expect((await post(base, "List", '{"table":"def')).json.code).to.equal("invalid_argument");
    const huge = await post(base, "List", JSON.stringify({ table: "x".repeat(200_000) }));
    expect(huge.json.code).to.equal("resource_exhausted");
    const wrong = await fetch(`${base}/${SERVICE}/List`, { method: "POST", headers: { "content-type": "text/plain" }, body: "{}" });
    expect(wrong.status).to.equal(415);
    expect((await post(base, "List", {})).status).to.equal(200);
  });

  it("serves binary Connect and gRPC-Web to connect's own clients", async () => {
    const binary = createClient(SessionRegistry, createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: true }));
    expect((await binary.getServerInfo({})).store).to.equal("memory");
    const web = createClient(SessionRegistry, createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }));
    expect((await web.getTable({ table: "default" })).table?.name).to.equal("default");
  });

  it("answers curl and buf curl --protocol connect", async () => {
    const curl = await run("curl", ["-s", "-H", "content-type: application/json", "-d", '{"table":"default"}', `${base}/${SERVICE}/List`]);
    expect(curl.code, curl.stderr).to.equal(0);
    expect(JSON.parse(curl.stdout)).to.have.property("tableUid");
    const buf = await run(`${ROOT}node_modules/.bin/buf`, [
      "curl",
      "--protocol",
      "connect",
      "--schema",
      ROOT,
      "--data",
      '{"table":"default"}',
      `${base}/${SERVICE}/GetTable`,
    ]);
    expect(buf.code, buf.stderr).to.equal(0);
    expect(JSON.parse(buf.stdout)).to.have.nested.property("table.name", "default");
  });

  it("serves the live page at / and nothing at other paths: 404", async () => {
    const page = await fetch(`${base}/`);
    expect(page.status).to.equal(200);
    expect(page.headers.get("content-type")).to.equal("text/html; charset=utf-8");
    expect((await fetch(`${base}/no-such-path`)).status).to.equal(404);
  });
});

describe("the HTTP door with --auth-tokens", function () {
  this.timeout(30_000);
  const READ = "read-token-0123456789abcdef";
  const WRITE_ALPHA = "write-alpha-0123456789abcdef";
  let dir: string;
  let d: TestDaemon;
  let base: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "web-auth-"));
    writeFileSync(join(dir, "tokens"), `read ${READ}\nwrite ${WRITE_ALPHA} alpha\n`);
    d = await startTestDaemon({ http: true, config: { authTokensFile: join(dir, "tokens") } });
    base = d.daemon.httpUrl!;
  });
  after(async () => {
    await d.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const reasonOf = (json: ErrorJson) => json.details?.[0]?.debug?.reason;

  it("refuses no token and a wrong token as unauthenticated", async () => {
    const none = await post(base, "List", {});
    expect(none.status).to.equal(401);
    expect(none.json.code).to.equal("unauthenticated");
    const wrong = await post(base, "List", {}, { authorization: "Bearer not-a-token-at-all-000" });
    expect(wrong.json.code).to.equal("unauthenticated");
    expect(reasonOf(wrong.json)).to.equal("UNAUTHENTICATED");
  });

  it("allows a read token to read and refuses it a write, before reading the body", async () => {
    expect((await post(base, "List", {}, { authorization: `Bearer ${READ}` })).status).to.equal(200);
    const denied = await post(base, "Register", "this body is never read", { authorization: `Bearer ${READ}` });
    expect(denied.json.code).to.equal("permission_denied");
    expect(denied.json.details?.[0]?.debug?.metadata).to.include({ method: "Register", role: "read" });
  });

  it("holds a token to its tables", async () => {
    const auth = { authorization: `Bearer ${WRITE_ALPHA}` };
    const denied = await post(base, "Register", { session: { id: "x", projectPath: "/x", ttl: "60s" } }, auth);
    expect(denied.json.code).to.equal("permission_denied");
    expect(denied.json.details?.[0]?.debug?.metadata).to.include({ table: "default" });
  });

  it("refuses gRPC-Web and binary Connect calls without a token, with the ErrorInfo in their details", async () => {
    for (const transport of [
      createGrpcWebTransport({ baseUrl: base, httpVersion: "1.1" }),
      createConnectTransport({ baseUrl: base, httpVersion: "1.1", useBinaryFormat: true }),
    ]) {
      const client = createClient(SessionRegistry, transport);
      const err = await client.list({}).then(
        () => undefined,
        (e: unknown) => ConnectError.from(e),
      );
      expect(err?.code).to.equal(Code.Unauthenticated);
      expect(err?.findDetails(ErrorInfoSchema)[0]?.reason).to.equal("UNAUTHENTICATED");
    }
  });

  it("refuses a Watch without a token in the end-of-stream message", async () => {
    const { end } = await watchMessages(base, {}, 1);
    expect(end).to.nested.include({ "error.code": "unauthenticated" });
  });
});

describe("--http-listen as a flag", function () {
  this.timeout(30_000);

  it("is off with off: the ready line names the gRPC address only", async () => {
    const p = spawnDaemon(["--listen", "127.0.0.1:0", "--http-listen", "off"]);
    await waitForPort(p);
    expect(p.stdout()).to.match(/^session-registry listening on 127\.0\.0\.1:\d+ \(/);
    p.child.kill("SIGTERM");
    await p.exited;
  });

  it("prints the HTTP address next to the gRPC one", async () => {
    const p = spawnDaemon(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]);
    await waitForPort(p);
    expect(p.stdout()).to.match(/^session-registry listening on 127\.0\.0\.1:\d+ and http:\/\/127\.0\.0\.1:\d+ \(/);
    p.child.kill("SIGTERM");
    expect((await p.exited).code).to.equal(0);
  });

  it("refuses a non-loopback address without TLS and tokens", async () => {
    const p = spawnDaemon(["--listen", "127.0.0.1:0", "--http-listen", "0.0.0.0:0"]);
    // Should it start after all, stop it, so that the failure is an assertion and not a hang.
    void waitForPort(p).then(
      () => p.child.kill("SIGTERM"),
      () => undefined,
    );
    const { code } = await p.exited;
    expect(p.stderr()).to.match(/refusing to serve HTTP on 0\.0\.0\.0:0 in plaintext/);
    expect(code).to.equal(2);
  });

  it("exits 2 naming the flag when its port is in use", async () => {
    const first = spawnDaemon(["--listen", "127.0.0.1:0", "--http-listen", "127.0.0.1:0"]);
    await waitForPort(first);
    const port = /and http:\/\/127\.0\.0\.1:(\d+)/.exec(first.stdout())![1]!;
    const second = spawnDaemon(["--listen", "127.0.0.1:0", "--http-listen", `127.0.0.1:${port}`]);
    const { code } = await second.exited;
    expect(code).to.equal(2);
    expect(second.stderr()).to.match(new RegExp(`port 127\\.0\\.0\\.1:${port} is in use.*--http-listen`));
    first.child.kill("SIGTERM");
    await first.exited;
  });
});
