/**
 * The reflection protocol question by question, on both versions (v1 and
 * v1alpha), through clients of the stubs generated from gRPC's reflection
 * protos: files come with their transitive imports (the asked-for file
 * first, each once), a symbol is any declaration's full name, what is not
 * there is an error_response NOT_FOUND and the stream goes on.
 *
 * The daemon's own descriptor set has no extensions, so a second server
 * serves a set that `buf build` makes from a few proto2 files that declare
 * some, through the same createReflectionService.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

import { credentials, Server, ServerCredentials, status, type ClientDuplexStream } from "@grpc/grpc-js";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";

import { createReflectionService } from "../../src/daemon/reflection.js";
import * as v1 from "../../src/gen/grpc/reflection/v1/reflection.js";
import * as v1alpha from "../../src/gen/grpc/reflection/v1alpha/reflection.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

const run = promisify(execFile);
const BUF = fileURLToPath(new URL("../../node_modules/.bin/buf", import.meta.url));

type Question = v1.ServerReflectionRequest["messageRequest"];
type Answer = v1.ServerReflectionResponse;

interface ReflectionStub {
  serverReflectionInfo(): ClientDuplexStream<v1.ServerReflectionRequest, Answer>;
  close(): void;
}

const CLIENTS: Record<"v1" | "v1alpha", new (address: string, creds: ReturnType<typeof credentials.createInsecure>) => ReflectionStub> = {
  v1: v1.ServerReflectionClient,
  v1alpha: v1alpha.ServerReflectionClient,
};

/** Sends every question on one stream, then ends it; resolves the answers in order. */
function ask(client: ReflectionStub, questions: Question[], host = ""): Promise<Answer[]> {
  return new Promise((resolve, reject) => {
    const call = client.serverReflectionInfo();
    const answers: Answer[] = [];
    call.on("data", (a: Answer) => answers.push(a));
    call.on("error", reject);
    call.on("end", () => resolve(answers));
    for (const messageRequest of questions) call.write({ host, messageRequest });
    call.end();
  });
}

/** The names of the files of a file_descriptor_response, in order. */
function fileNames(answer: Answer | undefined): string[] {
  const r = answer?.messageResponse;
  if (r?.$case !== "fileDescriptorResponse") throw new Error(`not a file_descriptor_response: ${JSON.stringify(r)}`);
  return r.value.fileDescriptorProto.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
}

/** The error_response of an answer. */
function errorOf(answer: Answer | undefined): { errorCode: number; errorMessage: string } {
  const r = answer?.messageResponse;
  if (r?.$case !== "errorResponse") throw new Error(`not an error_response: ${JSON.stringify(r)}`);
  return r.value;
}

const REGISTRY_FILE = "sessionregistry/v1/session_registry.proto";
const REGISTRY_IMPORTS = ["google/protobuf/duration.proto", "google/protobuf/field_mask.proto", "google/protobuf/timestamp.proto"];
const HEALTH_FILE = "grpc/health/v1/health.proto";

const FIXTURE: Record<string, string> = {
  "fixture/v1/base.proto": `syntax = "proto2";
package fixture.v1;
message Base {
  extensions 100 to 199;
}
`,
  "fixture/v1/ext.proto": `syntax = "proto2";
package fixture.v1;
import "fixture/v1/base.proto";
extend Base {
  optional string note = 150;
  optional int32 rank = 120;
}
message Holder {
  extend Base {
    optional bool flag = 101;
  }
}
`,
  "fixture/v1/top.proto": `syntax = "proto2";
package fixture.v1;
import "fixture/v1/ext.proto";
import "fixture/v1/base.proto";
message Top {
  optional Holder holder = 1;
  optional Base base = 2;
}
`,
};

describe("the reflection protocol", function () {
  // Building the fixture's descriptor set runs buf once.
  this.timeout(20_000);

  let daemon: TestDaemon;
  let fixtureServer: Server;
  let fixtureAddress: string;
  let dir: string;
  const clients: ReflectionStub[] = [];

  before(async () => {
    daemon = await startTestDaemon();
    dir = await mkdtemp(join(tmpdir(), "session-registry-reflection-fixture-"));
    for (const [name, text] of Object.entries(FIXTURE)) {
      await mkdir(join(dir, "protos", "fixture/v1"), { recursive: true });
      await writeFile(join(dir, "protos", name), text);
    }
    const set = join(dir, "fixture.binpb");
    await run(BUF, ["build", join(dir, "protos"), "--as-file-descriptor-set", "-o", set], { timeout: 15_000 });
    fixtureServer = new Server();
    (await createReflectionService(set)).addToServer(fixtureServer);
    const port = await new Promise<number>((resolve, reject) =>
      fixtureServer.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
    );
    fixtureAddress = `127.0.0.1:${port}`;
  });

  after(async () => {
    for (const c of clients.splice(0)) c.close();
    /* eslint-disable @typescript-eslint/no-unnecessary-condition -- each is unset if before() failed */
    await daemon?.stop();
    if (fixtureServer !== undefined) await new Promise<void>((resolve) => fixtureServer.tryShutdown(() => resolve()));
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
    /* eslint-enable @typescript-eslint/no-unnecessary-condition */
  });

  for (const [version, Client] of Object.entries(CLIENTS)) {
    describe(`grpc.reflection.${version}`, () => {
      let registry: ReflectionStub;
      let fixture: ReflectionStub;

      before(() => {
        registry = new Client(daemon.address, credentials.createInsecure());
        fixture = new Client(fixtureAddress, credentials.createInsecure());
        clients.push(registry, fixture);
      });

      it("echoes the host and the request in each answer", async () => {
        const question: Question = { $case: "listServices", value: "*" };
        const [a] = await ask(registry, [question], "registry.example:50051");
        expect(a?.validHost).to.equal("registry.example:50051");
        expect(a?.originalRequest).to.deep.equal({ host: "registry.example:50051", messageRequest: question });
      });

      it("lists the services of the descriptor set", async () => {
        const [a] = await ask(registry, [{ $case: "listServices", value: "" }]);
        expect(a?.messageResponse).to.deep.equal({
          $case: "listServicesResponse",
          value: { service: [{ name: "sessionregistry.v1.SessionRegistry" }, { name: "grpc.health.v1.Health" }] },
        });
      });

      it("gives a nested message's file, then the files it imports", async () => {
        const [a] = await ask(registry, [{ $case: "fileContainingSymbol", value: "sessionregistry.v1.Session.MetadataEntry" }]);
        const names = fileNames(a);
        expect(names[0]).to.equal(REGISTRY_FILE);
        expect(names.slice(1)).to.have.members(REGISTRY_IMPORTS);
        expect(names).to.have.length(1 + REGISTRY_IMPORTS.length);
      });

      it("finds every kind of declaration by its full name", async () => {
        const symbols: [string, string][] = [
          ["sessionregistry.v1.SessionRegistry", REGISTRY_FILE],
          ["sessionregistry.v1.SessionRegistry.GetTable", REGISTRY_FILE],
          ["sessionregistry.v1.Session", REGISTRY_FILE],
          ["sessionregistry.v1.Session.project_path", REGISTRY_FILE],
          ["sessionregistry.v1.LookupRequest.key", REGISTRY_FILE],
          ["sessionregistry.v1.EventType", REGISTRY_FILE],
          // Enum values are named in their enum's scope, as in protobuf: not "EventType.EVENT_TYPE_REMOVED".
          ["sessionregistry.v1.EVENT_TYPE_REMOVED", REGISTRY_FILE],
          ["grpc.health.v1.HealthCheckResponse.ServingStatus", HEALTH_FILE],
          ["grpc.health.v1.HealthCheckResponse.SERVING", HEALTH_FILE],
          ["google.protobuf.Timestamp", "google/protobuf/timestamp.proto"],
          ["google.rpc.ErrorInfo", "google/rpc/error_details.proto"],
        ];
        const answers = await ask(
          registry,
          symbols.map(([value]) => ({ $case: "fileContainingSymbol", value })),
        );
        expect(answers.map((a) => fileNames(a)[0])).to.deep.equal(symbols.map(([, file]) => file));
      });

      it("gives a dependency by its file name, with its own imports only", async () => {
        const answers = await ask(registry, [
          { $case: "fileByFilename", value: "google/protobuf/timestamp.proto" },
          { $case: "fileByFilename", value: "google/rpc/status.proto" },
        ]);
        expect(answers.map(fileNames)).to.deep.equal([
          ["google/protobuf/timestamp.proto"],
          ["google/rpc/status.proto", "google/protobuf/any.proto"],
        ]);
      });

      it("answers NOT_FOUND for what is not there, and keeps answering on the same stream", async () => {
        const answers = await ask(registry, [
          { $case: "fileContainingSymbol", value: "sessionregistry.v1.NoSuchMessage" },
          { $case: "fileContainingSymbol", value: "sessionregistry.v1.EventType.EVENT_TYPE_REMOVED" },
          { $case: "fileByFilename", value: "no/such/file.proto" },
          { $case: "fileContainingExtension", value: { containingType: "sessionregistry.v1.Session", extensionNumber: 100 } },
          { $case: "allExtensionNumbersOfType", value: "sessionregistry.v1.NoSuchMessage" },
          { $case: "fileContainingSymbol", value: "sessionregistry.v1.Session" },
        ]);
        expect(answers).to.have.length(6);
        for (const a of answers.slice(0, 5)) expect(errorOf(a).errorCode, JSON.stringify(a.messageResponse)).to.equal(status.NOT_FOUND);
        expect(errorOf(answers[0]).errorMessage).to.equal('no symbol named "sessionregistry.v1.NoSuchMessage"');
        expect(errorOf(answers[2]).errorMessage).to.equal('no file named "no/such/file.proto"');
        expect(errorOf(answers[3]).errorMessage).to.equal('no extension 100 of "sessionregistry.v1.Session"');
        expect(fileNames(answers[5])[0]).to.equal(REGISTRY_FILE);
      });

      it("keeps an unknown name out of its error message past a bound", async () => {
        const [a] = await ask(registry, [{ $case: "fileContainingSymbol", value: "x".repeat(10_000) }]);
        expect(errorOf(a).errorCode).to.equal(status.NOT_FOUND);
        expect(errorOf(a).errorMessage.length).to.be.lessThan(400);
      });

      it("answers a request that asks nothing with INVALID_ARGUMENT", async () => {
        const [a] = await ask(registry, [undefined]);
        expect(errorOf(a).errorCode).to.equal(status.INVALID_ARGUMENT);
        expect(errorOf(a).errorMessage).to.include("list_services");
      });

      it("says a message with no extensions has none", async () => {
        const [a] = await ask(registry, [{ $case: "allExtensionNumbersOfType", value: "sessionregistry.v1.Session" }]);
        expect(a?.messageResponse).to.deep.equal({
          $case: "allExtensionNumbersResponse",
          value: { baseTypeName: "sessionregistry.v1.Session", extensionNumber: [] },
        });
      });

      describe("with extensions", () => {
        it("gives the file that declares an extension, with its imports", async () => {
          const answers = await ask(fixture, [
            { $case: "fileContainingExtension", value: { containingType: "fixture.v1.Base", extensionNumber: 150 } },
            { $case: "fileContainingExtension", value: { containingType: "fixture.v1.Base", extensionNumber: 101 } },
            { $case: "fileContainingExtension", value: { containingType: "fixture.v1.Base", extensionNumber: 102 } },
          ]);
          expect(fileNames(answers[0])).to.deep.equal(["fixture/v1/ext.proto", "fixture/v1/base.proto"]);
          expect(fileNames(answers[1])).to.deep.equal(["fixture/v1/ext.proto", "fixture/v1/base.proto"]);
          expect(errorOf(answers[2]).errorCode).to.equal(status.NOT_FOUND);
        });

        it("lists every extension number of a type, in order", async () => {
          const [a] = await ask(fixture, [{ $case: "allExtensionNumbersOfType", value: "fixture.v1.Base" }]);
          expect(a?.messageResponse).to.deep.equal({
            $case: "allExtensionNumbersResponse",
            value: { baseTypeName: "fixture.v1.Base", extensionNumber: [101, 120, 150] },
          });
        });

        it("finds extensions by their full names, top-level and nested", async () => {
          const answers = await ask(fixture, [
            { $case: "fileContainingSymbol", value: "fixture.v1.note" },
            { $case: "fileContainingSymbol", value: "fixture.v1.Holder.flag" },
          ]);
          expect(answers.map((a) => fileNames(a)[0])).to.deep.equal(["fixture/v1/ext.proto", "fixture/v1/ext.proto"]);
        });

        it("gives transitive imports once each, breadth first", async () => {
          const [a] = await ask(fixture, [{ $case: "fileContainingSymbol", value: "fixture.v1.Top.holder" }]);
          expect(fileNames(a)).to.deep.equal(["fixture/v1/top.proto", "fixture/v1/ext.proto", "fixture/v1/base.proto"]);
        });
      });
    });
  }

  describe("over a descriptor set whose files do not decode", () => {
    let server: Server;
    let client: ReflectionStub;

    before(async () => {
      // One file (field 1) of three bytes that are no FileDescriptorProto: a varint tag that never ends.
      const set = join(dir, "broken.binpb");
      await writeFile(set, Uint8Array.from([0x0a, 0x03, 0xff, 0xff, 0xff]));
      server = new Server();
      // Start-up only splits the set into files; decoding waits for the first call.
      (await createReflectionService(set)).addToServer(server);
      const port = await new Promise<number>((resolve, reject) =>
        server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
      );
      client = new v1.ServerReflectionClient(`127.0.0.1:${port}`, credentials.createInsecure());
    });

    after(async () => {
      /* eslint-disable @typescript-eslint/no-unnecessary-condition -- each is unset if before() failed */
      client?.close();
      if (server !== undefined) await new Promise<void>((resolve) => server.tryShutdown(() => resolve()));
      /* eslint-enable @typescript-eslint/no-unnecessary-condition */
    });

    it("ends a reflection call with INTERNAL saying so, at its first request", async () => {
      const err = (await ask(client, [{ $case: "listServices", value: "" }]).then(
        () => expect.fail("the call succeeded"),
        (e: unknown) => e,
      )) as { code: number; details: string };
      expect(err.code).to.equal(status.INTERNAL);
      expect(err.details).to.match(/^reflection cannot read the daemon's descriptor set \(.+\); reinstall the daemon$/);
    });
  });
});
