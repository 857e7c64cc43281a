/**
 * The CLI in process (no child process): value parsing, output formatting,
 * connection flags, the message and exit code of the error classes the
 * process tests do not provoke, and runCli itself for the variants of
 * commands whose main path the process tests cover.
 */
import { expect } from "chai";
import { EventType, SessionRegistryError, fromServiceError, status, type Session } from "@session-registry/client";
import { Metadata, type ServiceError } from "@grpc/grpc-js";

import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { parseCommandLine, parseCount, parseDuration, parseLabels, projectPathArg, UsageError } from "../../src/cli/args.js";
import { runCli, type CliIo } from "../../src/cli/cli.js";
import { connectionFrom, CONNECTION_OPTIONS } from "../../src/cli/connection.js";
import { describeFailure, ExitCode } from "../../src/cli/errors.js";
import { columns, sessionJson, watchItemLines, type SessionJson, type TableJson } from "../../src/cli/format.js";
import { ErrorInfo } from "@session-registry/client/gen/google/rpc/error_details";
import { Status } from "@session-registry/client/gen/google/rpc/status";

/** A daemon-style error: status code, message and an ErrorInfo trailer. */
function registryError(code: status, details: string, reason: string, metadata: Record<string, string> = {}): SessionRegistryError {
  const info = ErrorInfo.encode({ reason, domain: "sessionregistry.v1", metadata: new Map(Object.entries(metadata)) }).finish();
  const trailer = Status.encode({
    code,
    message: details,
    details: [{ typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from(info) }],
  }).finish();
  const md = new Metadata();
  md.set("grpc-status-details-bin", Buffer.from(trailer));
  const err: ServiceError = Object.assign(new Error(details), { code, details, metadata: md });
  return fromServiceError(err);
}

const session: Session = {
  id: "s1",
  name: "my app",
  projectPath: "/p/my app",
  metadata: new Map([["tool", "editor"]]),
  createTime: new Date("2025-01-02T03:04:05.678Z"),
  updateTime: new Date("2025-01-02T03:04:05.678Z"),
  revision: 7,
  ttl: { seconds: 1, nanos: 500_000_000 },
  expireTime: new Date("2025-01-02T03:04:07.178Z"),
  tableUid: "u1",
};

describe("CLI units", () => {
  describe("values", () => {
    it("parses durations with ms, s, m and h, and bare seconds", () => {
      expect(["500ms", "30s", "1.5s", "2m", "1h", "10", "0"].map((d) => parseDuration(d, "--ttl"))).to.deep.equal([
        500, 30_000, 1500, 120_000, 3_600_000, 10_000, 0,
      ]);
      for (const bad of ["", "s", "-1s", "1d", "1e3", " 5s", "forever"]) {
        expect(() => parseDuration(bad, "--ttl"), bad).to.throw(UsageError, /^--ttl must be a duration/);
      }
    });

    it("parses whole numbers only", () => {
      expect(parseCount("42", "--from")).to.equal(42);
      for (const bad of ["-1", "1.5", "1e3", "0x10", "", "99999999999999999999"]) {
        expect(() => parseCount(bad, "--from"), bad).to.throw(UsageError, /^--from must be an integer >= 0/);
      }
    });

    it("parses KEY=VALUE labels, the value keeping later '=' signs", () => {
      expect([...parseLabels(["a=1", "b=x=y", "c="], "--meta")]).to.deep.equal([
        ["a", "1"],
        ["b", "x=y"],
        ["c", ""],
      ]);
      expect(() => parseLabels(["=v"], "--meta")).to.throw(UsageError, /KEY=VALUE/);
      expect(() => parseLabels(["novalue"], "--meta")).to.throw(UsageError, /KEY=VALUE/);
    });

    it("resolves relative project paths against the directory and leaves absolute ones alone", () => {
      expect(projectPathArg("app", "/home/me")).to.equal("/home/me/app");
      expect(projectPathArg(".", "/home/me")).to.equal("/home/me");
      expect(projectPathArg("/a/../b", "/home/me")).to.equal("/a/../b");
      expect(projectPathArg("", "/home/me")).to.equal("");
    });

    it("rewords parseArgs errors as usage errors naming the flag", () => {
      const options = { name: { type: "string", help: "" }, force: { type: "boolean", help: "" } } as const;
      expect(() => parseCommandLine(["--bogus"], options)).to.throw(UsageError, /^unknown flag --bogus$/);
      expect(() => parseCommandLine(["--name"], options)).to.throw(UsageError, /^--name needs a value$/);
      expect(() => parseCommandLine(["--force=yes"], options)).to.throw(UsageError, /^--force takes no value$/);
    });
  });

  describe("output", () => {
    it("converts a session to JSON with camelCase keys, an object of labels and ISO times", () => {
      expect(sessionJson(session)).to.deep.equal({
        id: "s1",
        name: "my app",
        projectPath: "/p/my app",
        metadata: { tool: "editor" },
        revision: 7,
        ttl: "1500ms",
        expireTime: "2025-01-02T03:04:07.178Z",
        createTime: "2025-01-02T03:04:05.678Z",
        updateTime: "2025-01-02T03:04:05.678Z",
      });
    });

    it("aligns columns and escapes control characters", () => {
      expect(
        columns(
          ["A", "B", "C"],
          [
            ["x", "yy", "z"],
            ["long\u001b[31m", "", "last\nline"],
          ],
        ),
      ).to.equal(
        // The escaped cell is 14 characters wide; columns are 2 spaces apart.
        [`${"A".padEnd(16)}B   C`, `${"x".padEnd(16)}yy  z`, "long\\u001b[31m      last\\u000aline", ""].join("\n"),
      );
    });

    it("quotes watch values with spaces", () => {
      expect(watchItemLines({ kind: "event", revision: 9, tableUid: "u1", type: EventType.EVENT_TYPE_UPDATED, session })).to.equal(
        'rev=9 UPDATED id=s1 name="my app" path="/p/my app" revision=7 metadata=tool=editor expires=2025-01-02T03:04:07Z\n',
      );
    });
  });

  describe("connection flags", () => {
    const parse = (argv: string[]) => parseCommandLine(argv, CONNECTION_OPTIONS);

    it("takes the address and token from the flags, else from the environment, and sends a bearer token", () => {
      const fromEnv = connectionFrom(parse([]), { SESSION_REGISTRY_ADDR: "10.0.0.1:7", SESSION_REGISTRY_TOKEN: "tok" });
      expect(fromEnv.addr).to.equal("10.0.0.1:7");
      expect(fromEnv.options.metadata).to.deep.equal({ authorization: "Bearer tok" });
      expect(fromEnv.options.timeoutMs).to.equal(10_000);
      const fromFlags = connectionFrom(parse(["--addr", "h:1", "--token", "t2", "--timeout", "0"]), {
        SESSION_REGISTRY_ADDR: "10.0.0.1:7",
        SESSION_REGISTRY_TOKEN: "tok",
      });
      expect(fromFlags.addr).to.equal("h:1");
      expect(fromFlags.options.metadata).to.deep.equal({ authorization: "Bearer t2" });
      expect(fromFlags.options.timeoutMs).to.equal(0);
      expect(connectionFrom(parse([]), { SESSION_REGISTRY_ADDR: "" }).addr).to.equal("127.0.0.1:50051");
    });

    it("rejects a token with spaces, half an mTLS pair and an unreadable CA file as usage errors", () => {
      expect(() => connectionFrom(parse(["--token", "a b"]), {})).to.throw(UsageError, /^--token must be/);
      expect(() => connectionFrom(parse(["--tls-cert", "c.pem"]), {})).to.throw(UsageError, /go together/);
      expect(() => connectionFrom(parse(["--tls-ca", "/nonexistent/ca.pem"]), {})).to.throw(UsageError, /cannot read --tls-ca .*ENOENT/);
    });
  });

  describe("failures", () => {
    const cases: [string, SessionRegistryError | Error, ExitCode, string][] = [
      [
        "SESSION_EXISTS",
        registryError(status.ALREADY_EXISTS, "", "SESSION_EXISTS", { table: "t", session_id: "s1" }),
        ExitCode.CONFLICT,
        "Session s1 already exists in table t.",
      ],
      [
        "TABLE_EXISTS",
        registryError(status.ALREADY_EXISTS, "", "TABLE_EXISTS", { table: "t", max_sessions: "5" }),
        ExitCode.CONFLICT,
        "Table t already exists with max sessions 5.",
      ],
      [
        "SESSION_LIMIT_REACHED in a named table",
        registryError(status.RESOURCE_EXHAUSTED, "", "SESSION_LIMIT_REACHED", { table: "t", current: "3", max: "3" }),
        ExitCode.LIMIT,
        "Maximum sessions reached (3/3 sessions open in table t). Close a session first.",
      ],
      [
        "TABLE_LIMIT_REACHED",
        registryError(status.RESOURCE_EXHAUSTED, "", "TABLE_LIMIT_REACHED", { current: "2", max: "2" }),
        ExitCode.LIMIT,
        "Maximum tables reached (2/2 tables). Delete a table first.",
      ],
      [
        "WATCHER_LIMIT_REACHED",
        registryError(status.RESOURCE_EXHAUSTED, "", "WATCHER_LIMIT_REACHED", { current: "1", max: "1" }),
        ExitCode.LIMIT,
        "Maximum watchers reached (1/1 watches open on the daemon). Try again later.",
      ],
      [
        "TABLE_NOT_EMPTY",
        registryError(status.FAILED_PRECONDITION, "", "TABLE_NOT_EMPTY", { table: "t", session_count: "2" }),
        ExitCode.PRECONDITION,
        "Table t still has 2 session(s). Remove them first, or pass --force.",
      ],
      [
        "REVISION_COMPACTED",
        registryError(status.OUT_OF_RANGE, "", "REVISION_COMPACTED", { table: "t", compact_revision: "40" }),
        ExitCode.PRECONDITION,
        "That revision is no longer kept; the oldest revision to watch from is 40.",
      ],
      [
        "SESSION_NOT_FOUND by path",
        registryError(status.NOT_FOUND, "", "SESSION_NOT_FOUND", { table: "default", project_path: "/p" }),
        ExitCode.NOT_FOUND,
        "No session has project /p open.",
      ],
      [
        "SHUTTING_DOWN",
        registryError(status.UNAVAILABLE, "", "SHUTTING_DOWN"),
        ExitCode.UNAVAILABLE,
        "The registry at h:1 is shutting down; try again once it is back.",
      ],
      [
        "DEADLINE_EXCEEDED",
        new SessionRegistryError({ code: status.DEADLINE_EXCEEDED, details: "Deadline exceeded" }),
        ExitCode.UNAVAILABLE,
        "No answer from the registry at h:1 before the deadline (--timeout); is it running there, and not overloaded?",
      ],
      [
        "DEADLINE_EXCEEDED from the daemon's --request-timeout",
        new SessionRegistryError({ code: status.DEADLINE_EXCEEDED, details: "the request did not arrive within 10000 ms" }),
        ExitCode.UNAVAILABLE,
        "The registry at h:1 gave up on the call: the request did not arrive within 10000 ms",
      ],
      [
        "UNAVAILABLE: nothing listens",
        new SessionRegistryError({
          code: status.UNAVAILABLE,
          details: "No connection established. Last error: Error: connect ECONNREFUSED 127.0.0.1:1. Resolution note: ",
        }),
        ExitCode.UNAVAILABLE,
        "Cannot reach the registry at h:1: nothing listens there (connection refused); is the daemon running (session-registry serve)? Else check --addr.",
      ],
      [
        "UNAVAILABLE: a name that does not resolve",
        new SessionRegistryError({ code: status.UNAVAILABLE, details: "Name resolution failed for target dns:nowhere.invalid:1" }),
        ExitCode.UNAVAILABLE,
        "Cannot reach the registry at h:1: its host name does not resolve; check --addr.",
      ],
      [
        "UNAVAILABLE: an OpenSSL error, without its dump",
        new SessionRegistryError({
          code: status.UNAVAILABLE,
          details:
            "803CA9638D7F0000:error:0A00010B:SSL routines:ssl3_get_record:wrong version number:../deps/openssl/openssl/ssl/record/ssl3_record.c:350:\n",
        }),
        ExitCode.UNAVAILABLE,
        "Cannot reach the registry at h:1: the TLS handshake failed; check --tls, --tls-ca, --tls-cert and --tls-key against the daemon's TLS flags.",
      ],
      [
        "UNAVAILABLE in the daemon's own words (no reason)",
        new SessionRegistryError({
          code: status.UNAVAILABLE,
          details: "the daemon is busy reading other calls' requests; retry after a moment",
        }),
        ExitCode.UNAVAILABLE,
        "The registry at h:1 is unavailable: the daemon is busy reading other calls' requests; retry after a moment",
      ],
      [
        "STORE_UNAVAILABLE: the daemon answered, its etcd did not",
        registryError(
          status.UNAVAILABLE,
          "the session store is unavailable: etcd at http://e1:2379, http://e2:2379 is unreachable (connection refused)",
          "STORE_UNAVAILABLE",
          {
            store: "etcd",
            endpoints: "http://e1:2379,http://e2:2379",
          },
        ),
        ExitCode.UNAVAILABLE,
        "The registry's store (etcd at http://e1:2379, http://e2:2379) is unavailable: etcd is unreachable (connection refused). " +
          "The registry at h:1 is up; try again once etcd is back.",
      ],
      [
        "STORE_UNAVAILABLE without metadata (an older daemon)",
        registryError(status.UNAVAILABLE, "the session store is unavailable: etcd timed out", "STORE_UNAVAILABLE"),
        ExitCode.UNAVAILABLE,
        "The registry's store is unavailable: etcd timed out. The registry at h:1 is up; try again once the store is back.",
      ],
      [
        "INTERNAL",
        registryError(status.INTERNAL, "internal error", "INTERNAL"),
        ExitCode.INTERNAL,
        "The registry failed with an internal error: internal error",
      ],
      [
        "INTERNAL from grpc-js (a broken stream), without its text",
        new SessionRegistryError({
          code: status.INTERNAL,
          details: "Received RST_STREAM with code 2 triggered by internal client error: Protocol error",
        }),
        ExitCode.INTERNAL,
        "The connection to the registry at h:1 broke during the call.",
      ],
      [
        "UNIMPLEMENTED: another gRPC server",
        new SessionRegistryError({
          code: status.UNIMPLEMENTED,
          details: "The server does not implement the method /sessionregistry.v1.SessionRegistry/ListTables",
        }),
        ExitCode.INTERNAL,
        "The server at h:1 does not serve this call: it is not a session registry, or an older version of it.",
      ],
      ["a plain Error", new TypeError("boom"), ExitCode.INTERNAL, "Unexpected error: boom"],
    ];
    it("leaves grpc-js's and OpenSSL's text out of the JSON form too", () => {
      const err = new SessionRegistryError({
        code: status.UNAVAILABLE,
        details: "80EC:error:0A00045C:SSL routines:ssl3_read_bytes:tlsv13 alert certificate required",
      });
      const failure = describeFailure(err, { addr: "h:1" });
      expect(failure.json).to.not.have.property("details");
      expect(JSON.stringify(failure.json)).to.not.match(/SSL routines/);
    });

    for (const [label, err, exitCode, message] of cases) {
      it(`reports ${label} with exit code ${exitCode}`, () => {
        const failure = describeFailure(err, { addr: "h:1" });
        expect(failure.exitCode).to.equal(exitCode);
        expect(failure.message).to.equal(message);
        expect(failure.json.message).to.equal(message);
        expect(failure.json.exitCode).to.equal(exitCode);
      });
    }
  });

  describe("runCli", () => {
    let d: TestDaemon;
    before(async () => {
      d = await startTestDaemon();
      const client = d.client();
      await client.createTable({ table: "units" });
      await client.register({ projectPath: "/home/me/app", id: "a1", name: "app" }, { table: "units" });
    });
    after(() => d.stop());

    async function run(argv: string[]): Promise<{ code: number; out: string; err: string }> {
      let out = "";
      let err = "";
      const io: CliIo = {
        stdout: (t) => void (out += t),
        stderr: (t) => void (err += t),
        env: {},
        cwd: "/home/me",
        interrupted: () => new AbortController().signal,
      };
      const code = await runCli(argv, io);
      return { code, out, err };
    }

    it("looks up by name and by a path relative to the current directory", async () => {
      const t = ["--table", "units", "--addr", d.address];
      const [byName, byPath] = await Promise.all([
        run(["lookup", "--name", "app", ...t]),
        run(["lookup", "--path", "app", "--json", ...t]),
      ]);
      expect(byName).to.include({ code: 0, err: "" });
      expect(byName.out).to.match(/^id: +a1\n/);
      expect(JSON.parse(byPath.out)).to.include({ id: "a1", projectPath: "/home/me/app" });
    });

    it("lists sessions and tables as JSON arrays, and says so on stderr when a table is empty", async () => {
      const [ls, tables, empty, emptyJson] = await Promise.all([
        run(["ls", "--table", "units", "--json", "--addr", d.address]),
        run(["tables", "--json", "--addr", d.address]),
        run(["ls", "--addr", d.address]),
        run(["ls", "--json", "--addr", d.address]),
      ]);
      expect((JSON.parse(ls.out) as SessionJson[]).map((x) => x.id)).to.deep.equal(["a1"]);
      expect((JSON.parse(tables.out) as TableJson[]).map((x) => x.name)).to.deep.equal(["default", "units"]);
      expect(empty).to.deep.equal({ code: 0, out: "", err: "No sessions in table default.\n" });
      expect(emptyJson).to.deep.equal({ code: 0, out: "[]\n", err: "" });
    });

    it("succeeds on rm --allow-missing of a session that is not there", async () => {
      expect(await run(["rm", "nobody", "--allow-missing", "--addr", d.address])).to.deep.equal({
        code: 0,
        out: "Session nobody was not there; nothing removed.\n",
        err: "",
      });
    });

    it("refuses bad usage with exit code 2 before calling, as text or as JSON", async () => {
      const [unknown, twoKeys, json, missing, extra, nothing] = await Promise.all([
        run(["frobnicate"]),
        run(["lookup", "--id", "a", "--name", "b"]),
        run(["register", "--path", "/x", "--ttl", "forever", "--json"]),
        run(["rm"]),
        run(["get-table", "a", "b"]),
        run(["update", "a1"]),
      ]);
      expect(unknown).to.deep.equal({
        code: 2,
        out: "",
        err: 'session-registry: unknown command "frobnicate"\nRun `session-registry --help` for usage.\n',
      });
      expect(twoKeys.err).to.equal(
        "session-registry lookup: give exactly one of --id, --path or --name\nRun `session-registry lookup --help` for usage.\n",
      );
      expect(JSON.parse(json.err)).to.deep.equal({
        error: {
          code: "USAGE",
          reason: "",
          message: '--ttl must be a duration such as 30s, 500ms, 5m or 1h, got "forever"',
          metadata: {},
          exitCode: 2,
        },
      });
      expect(missing.err).to.match(/^session-registry rm: missing ID\n/);
      expect(extra.err).to.match(/^session-registry get-table: unexpected argument "b"\n/);
      expect(nothing.err).to.match(/^session-registry update: nothing to update/);
      for (const r of [unknown, twoKeys, json, missing, extra, nothing]) expect(r.code).to.equal(2);
    });

    it("prints a command's usage, flags and examples for --help and `help COMMAND`", async () => {
      const [flag, word, serve] = await Promise.all([run(["register", "--help"]), run(["help", "register"]), run(["help", "serve"])]);
      expect(flag).to.deep.equal(word);
      expect(flag.code).to.equal(0);
      expect(flag.out).to.match(/^Usage: session-registry register --path PATH/);
      expect(flag.out).to.match(/^ {2}--ttl DURATION +Expire unless kept alive/m);
      expect(flag.out).to.match(/^ {2}--table TABLE\b/m);
      expect(flag.out).to.match(/^ {2}--addr HOST:PORT\b/m);
      expect(flag.out).to.match(/^Examples:\n {2}session-registry register /m);
      expect(serve.out).to.match(/^Usage: session-registry serve \[flags\]/);
      expect(serve.out).to.include("--listen");
    });
  });
});
