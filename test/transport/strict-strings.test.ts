/**
 * Strings must be valid UTF-8. The generated decoder would replace bad bytes
 * with U+FFFD, so that `/utf/a\xffb` and `/utf/a\xfeb` would be one project
 * path and bad bytes would be stored. Every string field of every request is sent
 * here with bytes that are not UTF-8, to a real daemon, which must answer
 * INVALID_ARGUMENT naming that field, and only after authenticating the call.
 * Requests are encoded with the daemon's own message types, with "§" where
 * the bad bytes go; the two bytes of its UTF-8 are then swapped for two that
 * are not UTF-8, so that every length stays right.
 */
import { expect } from "chai";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { status } from "@grpc/grpc-js";

import { DEFAULT_CONFIG } from "../../src/daemon/config.js";
import { silentLogger } from "../../src/daemon/logger.js";
import { startDaemon, type RunningDaemon } from "../../src/daemon/server.js";
import * as m from "../../src/gen/sessionregistry/v1/session_registry.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { h2Call, statusDetails } from "../helpers/h2.js";

const SERVICE = "/sessionregistry.v1.SessionRegistry";
const MARK = "§";
const MARK_BYTES = Buffer.from(MARK, "utf8"); // c2 a7

/** The encoded request with each MARK made into bytes that are not UTF-8 (0xff then `second`). */
function corrupt(bytes: Uint8Array, second = 0x41): Buffer {
  const out = Buffer.from(bytes);
  let found = 0;
  for (let at = out.indexOf(MARK_BYTES); at !== -1; at = out.indexOf(MARK_BYTES, at + 2)) {
    out[at] = 0xff;
    out[at + 1] = second;
    found++;
  }
  if (found === 0) throw new Error("no mark in the request");
  return out;
}

function session(fields: Partial<m.Session>): m.Session {
  return { ...m.Session.fromPartial({}), ...fields };
}

const register = (f: Partial<m.RegisterRequest>) =>
  m.RegisterRequest.encode({ ...m.RegisterRequest.fromPartial({}), session: session({ projectPath: "/p" }), ...f }).finish();
const update = (f: Partial<m.UpdateRequest>) =>
  m.UpdateRequest.encode({ ...m.UpdateRequest.fromPartial({}), session: session({ id: "s", name: "n" }), ...f }).finish();
const remove = (f: Partial<m.RemoveRequest>) =>
  m.RemoveRequest.encode({ requestId: "", table: "", id: "s", expectedRevision: 0n, allowMissing: false, tableUid: "", ...f }).finish();
const watch = (f: Partial<m.WatchRequest>) => m.WatchRequest.encode({ table: "", startRevision: 0n, tableUid: "", ...f }).finish();

/** [method, request with marks, the fields the daemon must name] for every string field of every request. */
const CASES: [string, Uint8Array, string[]][] = [
  ["CreateTable", m.CreateTableRequest.encode({ table: `t${MARK}`, maxSessions: 0 }).finish(), ["table"]],
  ["GetTable", m.GetTableRequest.encode({ table: `t${MARK}` }).finish(), ["table"]],
  ["DeleteTable", m.DeleteTableRequest.encode({ table: `t${MARK}`, force: false }).finish(), ["table"]],
  ["Register", register({ table: `t${MARK}` }), ["table"]],
  ["Register", register({ requestId: `r${MARK}` }), ["request_id"]],
  ["Register", register({ session: session({ id: `s${MARK}`, projectPath: "/p" }) }), ["session.id"]],
  ["Register", register({ session: session({ name: `n${MARK}`, projectPath: "/p" }) }), ["session.name"]],
  ["Register", register({ session: session({ projectPath: `/utf/a${MARK}b` }) }), ["session.project_path"]],
  ["Register", register({ session: session({ projectPath: "/p", metadata: new Map([[`k${MARK}`, "v"]]) }) }), ["session.metadata"]],
  ["Register", register({ session: session({ projectPath: "/p", metadata: new Map([["k", `v${MARK}`]]) }) }), ["session.metadata"]],
  ["Register", register({ session: session({ projectPath: "/p", tableUid: `u${MARK}` }) }), ["session.table_uid"]],
  ["Lookup", m.LookupRequest.encode({ table: "", key: { $case: "id", value: `s${MARK}` } }).finish(), ["id"]],
  ["Lookup", m.LookupRequest.encode({ table: "", key: { $case: "projectPath", value: `/p${MARK}` } }).finish(), ["project_path"]],
  ["Lookup", m.LookupRequest.encode({ table: "", key: { $case: "name", value: `n${MARK}` } }).finish(), ["name"]],
  ["List", m.ListRequest.encode({ table: "", pageSize: 0, pageToken: `p${MARK}` }).finish(), ["page_token"]],
  ["Update", update({ updateMask: ["name", `x${MARK}`] }), ["update_mask"]],
  ["Update", update({ tableUid: `u${MARK}` }), ["table_uid"]],
  ["Update", update({ session: session({ id: "s", projectPath: `/p${MARK}` }) }), ["session.project_path"]],
  ["Remove", remove({ id: `s${MARK}` }), ["id"]],
  ["Remove", remove({ tableUid: `u${MARK}`, requestId: `r${MARK}` }), ["request_id", "table_uid"]],
  ["KeepAlive", m.KeepAliveRequest.encode({ table: "", id: `s${MARK}` }).finish(), ["id"]],
  ["Watch", watch({ table: `t${MARK}` }), ["table"]],
  ["Watch", watch({ tableUid: `u${MARK}` }), ["table_uid"]],
  [
    "Register",
    register({
      table: `t${MARK}`,
      session: session({ id: `s${MARK}`, name: `n${MARK}`, projectPath: `/p${MARK}`, metadata: new Map([[`k${MARK}`, `v${MARK}`]]) }),
    }),
    ["table", "session.id", "session.name", "session.project_path", "session.metadata", "session.metadata"],
  ],
];

describe("strict strings: invalid UTF-8", () => {
  let d: TestDaemon;

  before(async () => {
    d = await startTestDaemon();
  });
  after(async () => {
    await d.stop();
  });

  for (const [method, request, fields] of CASES) {
    it(`refuses ${method} with bad bytes in ${fields.join(", ")}, naming ${fields.length > 1 ? "each" : "it"}`, async () => {
      const wire = await h2Call(d.address, `${SERVICE}/${method}`, corrupt(request));
      expect(wire.code, wire.message).to.equal(status.INVALID_ARGUMENT);
      const details = statusDetails(wire);
      expect(details.reasons).to.deep.equal(["INVALID_ARGUMENT"]);
      expect(details.violations.map((v) => v.field)).to.deep.equal(fields);
      for (const v of details.violations) expect(v.description).to.include("is not valid UTF-8");
    });
  }

  it("names the bad key or value of a metadata entry in the description", async () => {
    const bad = await h2Call(
      d.address,
      `${SERVICE}/Register`,
      corrupt(
        register({
          session: session({
            projectPath: "/p",
            metadata: new Map([
              [`k${MARK}`, "v"],
              ["ok", `v${MARK}`],
            ]),
          }),
        }),
      ),
    );
    expect(statusDetails(bad).violations).to.deep.equal([
      { field: "session.metadata", description: 'key "k\uFFFDA" is not valid UTF-8; send text encoded as UTF-8' },
      { field: "session.metadata", description: 'value of key "ok" is not valid UTF-8; send text encoded as UTF-8' },
    ]);
  });

  it("stores neither /utf/a\\xffb nor /utf/a\\xfeb, which U+FFFD would have made one path", async () => {
    const client = d.client();
    const table = uniqueName("utf");
    await client.createTable({ table });
    for (const second of [0xff, 0xfe]) {
      const bytes = corrupt(register({ table, session: session({ projectPath: `/utf/a${MARK}b` }) }), second);
      expect((await h2Call(d.address, `${SERVICE}/Register`, bytes)).code).to.equal(status.INVALID_ARGUMENT);
    }
    expect((await client.getTable(table)).sessionCount).to.equal(0);
  });

  it("takes valid text that merely looks odd: U+FFFD itself and a leading U+FEFF, unchanged", async () => {
    const client = d.client();
    const table = uniqueName("utf");
    await client.createTable({ table });
    const s = await client.register(
      { projectPath: "/\uFEFFbom/\uFFFD", name: "\uFEFF\uFFFD", metadata: { "\uFFFD": "\uFEFF" } },
      { table },
    );
    expect(s.projectPath).to.equal("/\uFEFFbom/\uFFFD");
    expect(s.name).to.equal("\uFEFF\uFFFD");
    expect(s.metadata).to.deep.equal(new Map([["\uFFFD", "\uFEFF"]]));
  });
});

describe("strict strings: invalid UTF-8 on a daemon with --auth-tokens", () => {
  const READ = "read-0123456789abcdef0123";
  const WRITE = "write-0123456789abcdef0123";
  let dir: string;
  let daemon: RunningDaemon;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sr-utf-auth-"));
    const tokens = join(dir, "tokens");
    await writeFile(tokens, `read ${READ}\nwrite ${WRITE}\n`, { mode: 0o600 });
    daemon = await startDaemon(
      { ...DEFAULT_CONFIG, listen: "127.0.0.1:0", httpListen: undefined, logLevel: "silent", authTokensFile: tokens },
      { logger: silentLogger },
    );
  });
  after(async () => {
    await daemon.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it("answers UNAUTHENTICATED, then PERMISSION_DENIED, before INVALID_ARGUMENT", async () => {
    const bytes = corrupt(register({ session: session({ projectPath: `/p${MARK}` }) }));
    const call = (token?: string) =>
      h2Call(daemon.address, `${SERVICE}/Register`, bytes, token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } });
    expect((await call()).code).to.equal(status.UNAUTHENTICATED);
    expect((await call("not-a-configured-token-0123456789")).code).to.equal(status.UNAUTHENTICATED);
    expect((await call(READ)).code).to.equal(status.PERMISSION_DENIED);
    expect((await call(WRITE)).code).to.equal(status.INVALID_ARGUMENT);
  });

  it("answers a Watch UNAUTHENTICATED before INVALID_ARGUMENT", async () => {
    const bytes = corrupt(watch({ table: `t${MARK}` }));
    expect((await h2Call(daemon.address, `${SERVICE}/Watch`, bytes)).code).to.equal(status.UNAUTHENTICATED);
    expect((await h2Call(daemon.address, `${SERVICE}/Watch`, bytes, { headers: { authorization: `Bearer ${READ}` } })).code).to.equal(
      status.INVALID_ARGUMENT,
    );
  });
});
