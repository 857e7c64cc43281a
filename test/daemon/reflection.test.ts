/**
 * Server reflection on a real daemon, through clients that know nothing but
 * what reflection tells them: `buf curl` (list, then call without --schema)
 * and a Python grpcio client (reflection_client.py) that resolves every type
 * the service uses. Both reflection versions (v1, v1alpha) are asked.
 *
 * The Python side needs Debian's python3-grpcio, python3-protobuf, protoc
 * and grpc_python_plugin (.ci/run installs them); without them the test
 * fails rather than skips.
 */
import { execFile } from "node:child_process";
import { copyFile, mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";

import { DESCRIPTOR_SET_URL } from "../../src/assets.js";
import { splitFileDescriptorSet } from "../../src/daemon/reflection.js";
import { SessionRegistryService } from "../../src/gen/sessionregistry/v1/session_registry.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const run = promisify(execFile);
const REPO_ROOT = fileURLToPath(new URL("../..", import.meta.url));
const BUF = join(REPO_ROOT, "node_modules/.bin/buf");
const PYTHON = "/usr/bin/python3";
const PYTHON_CLIENT = fileURLToPath(new URL("./reflection_client.py", import.meta.url));
const REFLECTION_VERSIONS = ["v1", "v1alpha"] as const;

/** "CreateTable", ... in the proto's order, from the generated service definition. */
const METHOD_NAMES = Object.values(SessionRegistryService).map((m) => m.path.slice(m.path.lastIndexOf("/") + 1));
/** The server-streaming methods, as the generated service definition has them. */
const STREAMING = Object.values(SessionRegistryService)
  .filter((m) => m.responseStream)
  .map((m) => m.path.slice(m.path.lastIndexOf("/") + 1));

interface PythonReport {
  services: string[];
  mainFile: string;
  methods: { name: string; input: string; output: string; serverStreaming: boolean }[];
  messages: string[];
  enums: string[];
  getTable: { table?: { name?: string } };
  /** File name -> the serialized FileDescriptorProto as served, base64. */
  files: Record<string, string>;
}

async function bufCurl(args: string[]): Promise<string> {
  const { stdout } = await run(BUF, ["curl", "--protocol", "grpc", "--http2-prior-knowledge", ...args], { timeout: 15_000 });
  return stdout;
}

describe("server reflection", function () {
  // buf curl and Python each start a process; protoc makes the Python stubs once.
  this.timeout(30_000);

  let daemon: TestDaemon;

  before(async () => {
    daemon = await startTestDaemon();
  });

  after(async () => {
    await daemon.stop();
  });

  describe("with buf curl", () => {
    it("lists the 13 SessionRegistry methods, and health's", async () => {
      const listed = (await bufCurl(["--list-methods", `http://${daemon.address}`])).split("\n").filter((l) => l !== "");
      const registry = listed.filter((l) => l.startsWith("sessionregistry.v1.SessionRegistry/"));
      expect(registry).to.have.members(METHOD_NAMES.map((m) => `sessionregistry.v1.SessionRegistry/${m}`));
      expect(registry).to.have.length(13);
      expect(listed).to.include.members(["grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch"]);
    });

    it("calls GetTable with no schema but the server's", async () => {
      const out = await bufCurl(["-d", '{"table": "default"}', `http://${daemon.address}/sessionregistry.v1.SessionRegistry/GetTable`]);
      const body = JSON.parse(out) as { table: { name: string; maxSessions: number } };
      expect(body.table.name).to.equal("default");
      expect(body.table.maxSessions).to.equal(10);
    });

    it("calls the health service through reflection too", async () => {
      const out = await bufCurl([
        "-d",
        '{"service": "sessionregistry.v1.SessionRegistry"}',
        `http://${daemon.address}/grpc.health.v1.Health/Check`,
      ]);
      expect(JSON.parse(out)).to.deep.equal({ status: "SERVING" });
    });
  });

  describe("with a Python grpcio client", () => {
    let stubs: string;
    let reports: Record<(typeof REFLECTION_VERSIONS)[number], PythonReport>;

    before(async () => {
      stubs = await mkdtemp(join(tmpdir(), "session-registry-reflection-"));
      // Renamed so that the modules do not shadow the installed `grpc` package.
      const protoRoot = join(REPO_ROOT, "third_party/grpc");
      const protos = REFLECTION_VERSIONS.map((v) => `reflection_${v}.proto`);
      for (const v of REFLECTION_VERSIONS) {
        await copyFile(join(protoRoot, `grpc/reflection/${v}/reflection.proto`), join(stubs, `reflection_${v}.proto`));
      }
      await run("/usr/bin/protoc", [
        `-I${stubs}`,
        `--python_out=${stubs}`,
        `--grpc_python_out=${stubs}`,
        "--plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin",
        ...protos,
      ]);
      const { stdout } = await run(PYTHON, [PYTHON_CLIENT, stubs, daemon.address, ...REFLECTION_VERSIONS], { timeout: 20_000 });
      reports = JSON.parse(stdout) as typeof reports;
    });

    after(async () => {
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- unset if before() failed
      if (stubs !== undefined) await rm(stubs, { recursive: true, force: true });
    });

    for (const version of REFLECTION_VERSIONS) {
      describe(`over grpc.reflection.${version}`, () => {
        it("lists the registry and health services", () => {
          expect(reports[version].services).to.have.members(["sessionregistry.v1.SessionRegistry", "grpc.health.v1.Health"]);
        });

        it("resolves every message and enum the service's methods use", () => {
          const report = reports[version];
          expect(report.mainFile).to.equal("sessionregistry/v1/session_registry.proto");
          expect(report.methods.map((m) => m.name)).to.deep.equal(METHOD_NAMES);
          for (const m of report.methods) {
            expect(m.input).to.equal(`sessionregistry.v1.${m.name}Request`);
            expect(m.output).to.equal(`sessionregistry.v1.${m.name}Response`);
            expect(m.serverStreaming).to.equal(STREAMING.includes(m.name));
          }
          expect(STREAMING).to.have.members(["Watch", "WatchTables"]);
          expect(report.messages).to.include.members([
            "sessionregistry.v1.Session",
            "sessionregistry.v1.Session.MetadataEntry",
            "sessionregistry.v1.Table",
            "sessionregistry.v1.WatchEvent",
            "sessionregistry.v1.WatchSnapshot",
            "google.protobuf.Timestamp",
            "google.protobuf.Duration",
            "google.protobuf.FieldMask",
          ]);
          expect(report.enums).to.include("sessionregistry.v1.EventType");
        });

        it("calls GetTable with message classes built from reflection", () => {
          expect(reports[version].getTable.table?.name).to.equal("default");
        });

        it("serves buf's descriptor bytes unchanged", async () => {
          const built = new Map<string, Buffer>();
          for (const bytes of splitFileDescriptorSet(await readFile(DESCRIPTOR_SET_URL))) {
            built.set(fromBinary(FileDescriptorProtoSchema, bytes).name, bytes);
          }
          const served = Object.entries(reports[version].files);
          expect(served.length).to.be.greaterThan(1);
          for (const [name, base64] of served) {
            expect(built.has(name), `${name} is in the descriptor set`).to.equal(true);
            expect(Buffer.from(base64, "base64").equals(built.get(name)!), `${name} is served byte for byte`).to.equal(true);
          }
        });
      });
    }
  });
});
