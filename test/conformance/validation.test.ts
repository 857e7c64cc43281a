/**
 * Request validation, limit by limit: each value AT a limit is accepted and
 * each value ONE PAST it is INVALID_ARGUMENT with a field violation naming the
 * proto's snake_case path. Everything goes through a real daemon.
 */
import { expect } from "chai";
import { InvalidArgumentError, ProjectAlreadyOpenError, SessionRegistryClient, status } from "@session-registry/client";

import { expectError, startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { rawError, wireDetails, type RawRegistry } from "../helpers/raw.js";

type Session = Awaited<ReturnType<SessionRegistryClient["register"]>>;

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const EMOJI = "\u{1F600}"; // one code point, two UTF-16 units, four UTF-8 bytes
const E_ACUTE = "é"; // one code point, two UTF-8 bytes

function utf8(s: string): number {
  return Buffer.byteLength(s, "utf8");
}

/** Shows a long test value briefly in a test title. */
function show(s: string): string {
  const json = JSON.stringify(s).replace(
    /[\p{Cc}\u200E\u200F\u202A-\u202E\u2066-\u2069]/gu,
    (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, "0")}`,
  );
  // eslint-disable-next-line @typescript-eslint/no-misused-spread -- code points are what the limits count
  return json.length > 24 ? `${JSON.stringify(s.slice(0, 8))}… (${[...s].length} code points, ${utf8(s)} bytes)` : json;
}

/** Awaits an INVALID_ARGUMENT that names exactly the given fields; returns the error. */
async function expectInvalid(promise: Promise<unknown>, ...fields: string[]): Promise<InvalidArgumentError> {
  const err = await expectError(promise, InvalidArgumentError);
  expect(err.code).to.equal(status.INVALID_ARGUMENT);
  expect(err.reason).to.equal("INVALID_ARGUMENT");
  expect(err.domain).to.equal("sessionregistry.v1");
  expect(err.fieldViolations.map((v) => v.field)).to.have.members(fields);
  for (const v of err.fieldViolations) expect(v.description, `description of ${v.field}`).to.not.equal("");
  return err;
}

describe("request validation", () => {
  let d: TestDaemon;
  let client: SessionRegistryClient;
  let raw: RawRegistry;
  let n = 0;

  before(async () => {
    d = await startTestDaemon();
    client = d.client();
    raw = d.rawClient();
  });

  after(async () => {
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
    await d?.stop();
  });

  async function newTable(maxSessions = 1000): Promise<string> {
    const table = uniqueName("v");
    await client.createTable({ table, maxSessions });
    return table;
  }

  function path(): string {
    n += 1;
    return `/v/${n}`;
  }

  describe("of table names", () => {
    const accepted = ["a".repeat(63), "A", "0", "9lives", "a.b-c_d", "Z_"];
    const refused = ["a".repeat(64), "-x", ".x", "_x", "a b", "a/b", "é", "a\n"];

    for (const name of accepted) {
      it(`accepts ${show(name)} in CreateTable and Register`, async () => {
        const { table } = await client.createTable({ table: name });
        expect(table.name).to.equal(name);
        const s = await client.register({ projectPath: path() }, { table: name });
        expect((await client.lookup({ id: s.id }, { table: name })).id).to.equal(s.id);
      });
    }

    for (const name of refused) {
      it(`refuses ${show(name)} in CreateTable, Register and GetTable on field table`, async () => {
        await expectInvalid(client.createTable({ table: name }), "table");
        await expectInvalid(client.register({ projectPath: path() }, { table: name }), "table");
        await expectInvalid(client.getTable(name), "table");
      });
    }
  });

  describe("of session ids", () => {
    const accepted = ["i".repeat(128), "a", "A.b_c:d-9"];
    const refused = ["i".repeat(129), "a b", "a/b", "é", "a\tb"];

    for (const id of accepted) {
      it(`accepts ${show(id)}`, async () => {
        const table = await newTable();
        const s = await client.register({ id, projectPath: path() }, { table });
        expect(s.id).to.equal(id);
      });
    }

    for (const id of refused) {
      it(`refuses ${show(id)} on field session.id`, async () => {
        const table = await newTable();
        await expectInvalid(client.register({ id, projectPath: path() }, { table }), "session.id");
      });
    }

    it("makes a UUIDv4 for an empty id", async () => {
      const table = await newTable();
      expect((await client.register({ id: "", projectPath: path() }, { table })).id).to.match(UUID_V4);
    });
  });

  describe("of names", () => {
    const accepted = [EMOJI.repeat(50), "x".repeat(50), "名前 with spaces", "a"];
    const refused = [EMOJI.repeat(51), "x".repeat(51), "\n", "\t", "\u0000", "\u007f", "\u0085", "tab\there", "line\nbreak"];

    for (const name of accepted) {
      it(`accepts ${show(name)}`, async () => {
        const table = await newTable();
        const s = await client.register({ name, projectPath: path() }, { table });
        expect(s.name).to.equal(name);
        expect((await client.lookup({ name }, { table })).id).to.equal(s.id);
      });
    }

    it("counts code points, not UTF-16 units: 50 emoji are 100 UTF-16 units and still fit", () => {
      expect(EMOJI.repeat(50).length).to.equal(100);
    });

    for (const name of refused) {
      it(`refuses ${show(name)} on field session.name`, async () => {
        const table = await newTable();
        await expectInvalid(client.register({ name, projectPath: path() }, { table }), "session.name");
      });
    }

    it("refuses a bad name in Update on field session.name", async () => {
      const table = await newTable();
      const s = await client.register({ projectPath: path() }, { table });
      await expectInvalid(client.update({ table, id: s.id, name: "x".repeat(51) }), "session.name");
      await expectInvalid(client.update({ table, id: s.id, name: "bad\u0007" }), "session.name");
    });

    const derived: [string, string][] = [
      ["/home/u/project", "project"],
      ["/home/u/project/", "project"],
      [`/x/${"b".repeat(60)}`, "b".repeat(50)],
      [`/${EMOJI.repeat(60)}`, EMOJI.repeat(50)],
      ["/", "/"],
    ];
    for (const [projectPath, name] of derived) {
      it(`derives the name ${show(name)} from the path ${show(projectPath)} when no name is given`, async () => {
        const table = await newTable();
        expect((await client.register({ projectPath }, { table })).name).to.equal(name);
      });
    }
  });

  describe("of project paths", () => {
    const accepted = [
      "/",
      `/${"a".repeat(4095)}`,
      `/${E_ACUTE.repeat(2047)}a`,
      `/${"a".repeat(4094)}/`,
      "/a/..hidden",
      "/a/b..c",
      "/a/...",
      "/..a",
      "/a b/c",
    ];
    const refused = [
      "",
      "rel/x",
      "./x",
      "~/x",
      `/${"a".repeat(4096)}`,
      `/${E_ACUTE.repeat(2048)}`,
      // 4097 bytes as sent, although it normalizes to fewer.
      `/${"a".repeat(4094)}//`,
      "/a\u0000b",
      "/a\nb",
      "/a\tb",
      "/a\rb",
      "/a\u001bb",
      "/a\u007fb",
      "/a\u0085b",
      "/a/\u202Etxt.exe",
      "/a\u202Ab",
      "/a\u202Cb",
      "/a\u2066b",
      "/a\u2069b",
      "/a\u200Eb",
      "/a\u200Fb",
      "/a/../b",
      "/a/..",
      "/..",
      "/../a",
      "/a/./../b",
    ];

    it("uses test paths whose byte lengths sit exactly at and one past 4096", () => {
      expect(utf8(accepted[1]!)).to.equal(4096);
      expect(utf8(accepted[2]!)).to.equal(4096);
      expect(accepted[2]!.length).to.equal(2049);
      expect(utf8(refused[4]!)).to.equal(4097);
      expect(utf8(refused[5]!)).to.equal(4097);
      expect(refused[5]!.length).to.equal(2049);
      expect(utf8(refused[6]!)).to.equal(4097);
    });

    for (const projectPath of accepted) {
      it(`accepts ${show(projectPath)}`, async () => {
        const table = await newTable();
        const s = await client.register({ projectPath }, { table });
        const normalized = projectPath.length > 1 ? projectPath.replace(/\/+$/, "") : projectPath;
        expect(s.projectPath).to.equal(normalized);
        expect((await client.lookup({ projectPath }, { table })).id).to.equal(s.id);
      });
    }

    for (const projectPath of refused) {
      it(`refuses ${show(projectPath)} on field session.project_path`, async () => {
        const table = await newTable();
        await expectInvalid(client.register({ projectPath }, { table }), "session.project_path");
      });
    }

    it("refuses a bad path in Update on field session.project_path", async () => {
      const table = await newTable();
      const s = await client.register({ projectPath: path() }, { table });
      await expectInvalid(client.update({ table, id: s.id, projectPath: "rel/x" }), "session.project_path");
      await expectInvalid(client.update({ table, id: s.id, projectPath: "/a/../b" }), "session.project_path");
      await expectInvalid(client.update({ table, id: s.id, projectPath: "/a\nb" }), "session.project_path");
      await expectInvalid(client.update({ table, id: s.id, projectPath: "/a\u202Eb" }), "session.project_path");
    });

    it("refuses a Lookup by a path with a control or bidirectional character on field project_path", async () => {
      const table = await newTable();
      await expectInvalid(client.lookup({ projectPath: "/a\tb" }, { table }), "project_path");
      await expectInvalid(client.lookup({ projectPath: "/a\u2067b" }, { table }), "project_path");
    });

    it("says which kind of character a refused path holds", async () => {
      const table = await newTable();
      const control = await expectInvalid(client.register({ projectPath: "/a\nb" }, { table }), "session.project_path");
      expect(control.fieldViolations[0]!.description).to.equal("must not contain control characters (NUL, tab, newline, ...)");
      const bidi = await expectInvalid(client.register({ projectPath: "/a\u202Eb" }, { table }), "session.project_path");
      expect(bidi.fieldViolations[0]!.description).to.equal(
        "must not contain bidirectional formatting characters (U+200E, U+200F, U+202A-U+202E, U+2066-U+2069)",
      );
    });

    it("stores /a//b/./c/ as /a/b/c, treats /a/b/c as the same project and finds it by /a/b/c/", async () => {
      const table = await newTable();
      const s = await client.register({ projectPath: "/a//b/./c/" }, { table });
      expect(s.projectPath).to.equal("/a/b/c");
      expect(s.name).to.equal("c");
      const err = await expectError(client.register({ projectPath: "/a/b/c" }, { table }), ProjectAlreadyOpenError);
      expect(err.sessionId).to.equal(s.id);
      expect(await client.lookup({ projectPath: "/a/b/c/" }, { table })).to.deep.equal(s);
    });
  });

  describe("of metadata", () => {
    const entries = (count: number): Record<string, string> =>
      Object.fromEntries(Array.from({ length: count }, (_, i) => [`k${i}`, `v${i}`]));
    const accepted: [string, Record<string, string>][] = [
      ["64 entries", entries(64)],
      ["a key of 128 bytes", { ["k".repeat(128)]: "v" }],
      ["a key of 128 bytes in 64 two-byte characters", { [E_ACUTE.repeat(64)]: "v" }],
      ["a value of 4096 bytes", { k: "v".repeat(4096) }],
      ["a value of 4096 bytes in 2048 two-byte characters", { k: E_ACUTE.repeat(2048) }],
      ["an empty value", { k: "" }],
      // 4 x (2 + 4094) = 16384 bytes of keys and values.
      ["keys and values of 16384 bytes together", Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`k${i}`, "v".repeat(4094)]))],
      ["values with tab, newline and carriage return", { json: '{\n\t"a": 1\r\n}', tsv: "a\tb" }],
      ["a key and a value with bidirectional characters (only paths refuse them)", { "\u202Ek": "\u2066v" }],
    ];
    const refused: [string, Record<string, string>][] = [
      ["65 entries", entries(65)],
      ["a key of 129 bytes", { ["k".repeat(129)]: "v" }],
      ["a key of 129 bytes in 65 characters", { [E_ACUTE.repeat(64) + "k"]: "v" }],
      ["an empty key", { "": "v" }],
      ["a value of 4097 bytes", { k: "v".repeat(4097) }],
      ["a value of 4097 bytes in 2049 characters", { k: E_ACUTE.repeat(2048) + "v" }],
      [
        "keys and values of 16385 bytes together",
        { ...Object.fromEntries(Array.from({ length: 4 }, (_, i) => [`k${i}`, "v".repeat(4094)])), x: "" },
      ],
      ["8 values of 4096 bytes", Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`k${i}`, "v".repeat(4096)]))],
      ["a key with a newline", { "k\n": "v" }],
      ["a key with a tab", { "k\tx": "v" }],
      ["a key with NUL", { "k\u0000": "v" }],
      ["a key with DEL", { "k\u007f": "v" }],
      ["a value with NUL", { k: "v\u0000" }],
      ["a value with ESC", { k: "\u001b[31mred" }],
      ["a value with U+0085", { k: "v\u0085" }],
    ];

    for (const [label, metadata] of accepted) {
      it(`accepts ${label} and stores them as sent`, async () => {
        const table = await newTable();
        const s = await client.register({ projectPath: path(), metadata }, { table });
        expect(s.metadata).to.deep.equal(new Map(Object.entries(metadata)));
        expect((await client.lookup({ id: s.id }, { table })).metadata).to.deep.equal(new Map(Object.entries(metadata)));
      });
    }

    for (const [label, metadata] of refused) {
      it(`refuses ${label} on field session.metadata, in Register and in Update`, async () => {
        const table = await newTable();
        await expectInvalid(client.register({ projectPath: path(), metadata }, { table }), "session.metadata");
        const s = await client.register({ projectPath: path() }, { table });
        await expectInvalid(client.update({ table, id: s.id, metadata }), "session.metadata");
      });
    }
  });

  describe("of ttls", () => {
    it("accepts no ttl and a ttl of 0, both meaning the session never expires", async () => {
      const table = await newTable();
      for (const ttlMs of [undefined, 0]) {
        const s = await client.register({ projectPath: path(), ...(ttlMs === undefined ? {} : { ttlMs }) }, { table });
        expect(s.ttl).to.equal(undefined);
        expect(s.expireTime).to.equal(undefined);
      }
    });

    const accepted: [string, number, { seconds: number; nanos: number }][] = [
      ["1 s", 1000, { seconds: 1, nanos: 0 }],
      ["1.5 s", 1500, { seconds: 1, nanos: 500_000_000 }],
      ["24 h", 86_400_000, { seconds: 86_400, nanos: 0 }],
    ];
    for (const [label, ttlMs, ttl] of accepted) {
      it(`accepts a ttl of ${label}, echoes it and sets an expire time after the create time`, async () => {
        const table = await newTable();
        const s = await client.register({ projectPath: path(), ttlMs }, { table });
        expect(s.ttl).to.deep.equal(ttl);
        expect(s.expireTime).to.be.instanceOf(Date);
        expect(s.expireTime!.getTime()).to.be.greaterThan(s.createTime!.getTime());
        // Loose: expire_time is create_time + ttl, give or take anything but a day.
        expect(s.expireTime!.getTime() - s.createTime!.getTime()).to.be.within(ttlMs - 1, ttlMs + 60_000);
      });
    }

    const refused: [string, number][] = [
      ["999 ms", 999],
      ["1 ms", 1],
      ["24 h + 1 ms", 86_400_001],
      ["-1 s", -1000],
    ];
    for (const [label, ttlMs] of refused) {
      it(`refuses a ttl of ${label} on field session.ttl, in Register and in Update`, async () => {
        const table = await newTable();
        await expectInvalid(client.register({ projectPath: path(), ttlMs }, { table }), "session.ttl");
        const s = await client.register({ projectPath: path() }, { table });
        await expectInvalid(client.update({ table, id: s.id, ttlMs }), "session.ttl");
      });
    }
  });

  describe("of table limits", () => {
    for (const maxSessions of [1, 1_000_000]) {
      it(`accepts max_sessions ${maxSessions}`, async () => {
        const table = uniqueName("v");
        const res = await client.createTable({ table, maxSessions });
        expect(res.table.maxSessions).to.equal(maxSessions);
      });
    }

    it("refuses max_sessions 1,000,001 on field max_sessions", async () => {
      const table = uniqueName("v");
      await expectInvalid(client.createTable({ table, maxSessions: 1_000_001 }), "max_sessions");
    });
  });

  describe("of list pages", () => {
    let big: string;
    let registered: Session[];

    before(async function () {
      this.timeout(60_000);
      big = await newTable(1200);
      registered = [];
      const batch = 100;
      for (let start = 0; start < 1100; start += batch) {
        const page = await Promise.all(
          Array.from({ length: batch }, (_, i) =>
            client.register({ id: `b${String(start + i).padStart(4, "0")}`, projectPath: `/big/${start + i}` }, { table: big }),
          ),
        );
        registered.push(...page);
      }
    });

    it("refuses a negative page size on field page_size", async () => {
      await expectInvalid(client.listPage({ table: big, pageSize: -1 }), "page_size");
    });

    it("returns 100 sessions for page size 0", async () => {
      const page = await client.listPage({ table: big, pageSize: 0 });
      expect(page.sessions).to.have.length(100);
      expect(page.nextPageToken).to.not.equal("");
      expect(page.totalSize).to.equal(1100);
    });

    for (const pageSize of [1000, 1001, 5000]) {
      it(`returns 1000 sessions for page size ${pageSize}, then the rest`, async () => {
        const page = await client.listPage({ table: big, pageSize });
        expect(page.sessions).to.have.length(1000);
        expect(page.nextPageToken).to.not.equal("");
        const rest = await client.listPage({ table: big, pageSize, pageToken: page.nextPageToken });
        expect(rest.sessions).to.have.length(100);
        expect(rest.nextPageToken).to.equal("");
        const all = [...page.sessions, ...rest.sessions].map((s) => s.id);
        expect(new Set(all).size).to.equal(1100);
        expect(new Set(all)).to.deep.equal(new Set(registered.map((s) => s.id)));
      });
    }

    for (const token of ["garbage", "AAAA", "x".repeat(300)]) {
      it(`refuses the page token ${show(token)} on field page_token`, async () => {
        await expectInvalid(client.listPage({ table: big, pageSize: 10, pageToken: token }), "page_token");
      });
    }
  });

  describe("of update masks", () => {
    for (const path of ["id", "create_time", "revision", "bogus"]) {
      it(`refuses a mask naming ${path} on field update_mask`, async () => {
        const table = await newTable();
        const s = await client.register({ projectPath: `/mask/${path}` }, { table });
        // The SDK's type allows only updatable fields; the server must refuse the rest.
        await expectInvalid(client.update({ table, id: s.id, name: "x", updateMask: [path as never] }), "update_mask");
      });
    }

    it("refuses an update that names nothing and sets nothing on field update_mask", async () => {
      const table = await newTable();
      const s = await client.register({ projectPath: path() }, { table });
      await expectInvalid(client.update({ table, id: s.id }), "update_mask");
    });
  });

  describe("of lookup keys", () => {
    it("refuses a Lookup with no key with INVALID_ARGUMENT", async () => {
      const table = await newTable();
      const err = await rawError(raw.lookup({ table, key: undefined }));
      expect(err.code).to.equal(status.INVALID_ARGUMENT);
      const wire = wireDetails(err.metadata);
      expect(wire.errorInfos.map((i) => i.reason)).to.deep.equal(["INVALID_ARGUMENT"]);
      expect(wire.badRequests.flatMap((b) => b.fieldViolations)).to.have.length.greaterThan(0);
    });

    it("refuses a Lookup with an invalid path or id with INVALID_ARGUMENT", async () => {
      const table = await newTable();
      await expectError(client.lookup({ projectPath: "rel/x" }, { table }), InvalidArgumentError);
      await expectError(client.lookup({ id: "a b" }, { table }), InvalidArgumentError);
    });
  });

  describe("of requests with several bad fields", () => {
    it("names every bad field in one INVALID_ARGUMENT", async () => {
      await expectInvalid(
        client.register({ id: "a b", name: "bad\nname", projectPath: "relative", metadata: { "": "v" }, ttlMs: 500 }, { table: "-bad" }),
        "table",
        "session.id",
        "session.name",
        "session.project_path",
        "session.metadata",
        "session.ttl",
      );
    });

    it("names every bad field of a CreateTable", async () => {
      await expectInvalid(client.createTable({ table: "a/b", maxSessions: 2_000_000 }), "table", "max_sessions");
    });
  });

  it("keeps serving after all of the above", async () => {
    const table = await client.getTable("default");
    expect(table.name).to.equal("default");
  });
});
