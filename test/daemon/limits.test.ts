/**
 * Connection limits on a real daemon. The other limits are tested where
 * they live: max tables (TABLE_LIMIT_REACHED) in the conformance suite, the
 * message size (RESOURCE_EXHAUSTED) in test/transport/hostile-input.test.ts,
 * the watcher limit in test/transport/watch-stream.test.ts.
 */
import { connect, constants as http2, type ClientHttp2Session, type IncomingHttpHeaders } from "node:http2";

import { expect } from "chai";
import { credentials } from "@grpc/grpc-js";
import { SessionRegistryClient as GeneratedClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { LIMITS } from "../../src/core/validation.js";
import { RegisterRequest, UpdateRequest } from "../../src/gen/sessionregistry/v1/session_registry.js";
import { REGISTRY_SERVICE_NAME } from "../../src/daemon/health.js";
import { serverOptions } from "../../src/daemon/server.js";
import { DEFAULT_CONFIG } from "../../src/daemon/config.js";
import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { EventType, RecordedWatch } from "../helpers/watch.js";
import { HealthClient } from "./health-client.js";

describe("connection limits", () => {
  describe("--max-concurrent-streams", () => {
    let daemon: TestDaemon;
    let watcher: GeneratedClient;
    const watches: RecordedWatch[] = [];

    beforeEach(async () => {
      daemon = await startTestDaemon({ config: { maxConcurrentStreams: 2 } });
      // A connection of its own: grpc-js channels to one address otherwise share one, and the
      // other clients' calls here would wait behind the watches for a stream slot too.
      watcher = new GeneratedClient(daemon.address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
    });

    afterEach(async () => {
      for (const w of watches.splice(0)) w.cancel();
      watcher.close();
      await daemon.stop();
    });

    it("holds a third stream on one connection until one of two closes, and keeps serving", async () => {
      const [first, second] = [0, 1].map(() => new RecordedWatch(watcher, "default"));
      watches.push(first!, second!);
      for (const w of [first!, second!]) await w.until((x) => x.messages.length >= 1, "the snapshot");

      const third = new RecordedWatch(watcher, "default");
      watches.push(third);

      // The daemon keeps serving: other connections, health, and the two open streams.
      const other = daemon.client();
      const session = await other.register({ projectPath: "/work/limits" });
      const health = new HealthClient(daemon.address);
      try {
        expect(await health.check(REGISTRY_SERVICE_NAME)).to.equal("SERVING");
      } finally {
        health.close();
      }
      for (const w of [first!, second!]) {
        await w.until((x) => x.events.some((e) => e.type === EventType.EVENT_TYPE_REGISTERED), "the REGISTERED event");
      }
      // No slot, no service: grpc-js holds the stream on the client (or the
      // daemon refuses it and the client retries it), so it has seen nothing.
      expect(third.messages).to.have.length(0);
      expect(third.ended).to.equal(false);

      first!.cancel();
      await third.until((x) => x.messages.length >= 1, "the third stream's snapshot once a slot is free");
      const snapshot = third.messages[0]!.kind;
      expect(snapshot?.$case).to.equal("snapshot");
      if (snapshot?.$case === "snapshot") expect(snapshot.value.sessions.map((s) => s.id)).to.deep.equal([session.id]);
    });
  });

  describe("keepalive pings from clients", () => {
    let daemon: TestDaemon;
    let session: ClientHttp2Session | undefined;

    beforeEach(async () => {
      daemon = await startTestDaemon();
    });

    afterEach(async () => {
      session?.destroy();
      session = undefined;
      await daemon.stop();
    });

    /** One grpc.health.v1.Health/Check over a raw HTTP/2 session; resolves with grpc-status. */
    function healthCheck(s: ClientHttp2Session): Promise<string | undefined> {
      return new Promise((resolve, reject) => {
        const req = s.request({
          [http2.HTTP2_HEADER_METHOD]: "POST",
          [http2.HTTP2_HEADER_PATH]: "/grpc.health.v1.Health/Check",
          [http2.HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
          te: "trailers",
        });
        req.on("trailers", (trailers: IncomingHttpHeaders) => resolve(trailers["grpc-status"] as string | undefined));
        req.on("error", reject);
        req.on("data", () => {});
        // An empty HealthCheckRequest: not compressed, length 0.
        req.end(Buffer.alloc(5));
      });
    }

    it("answers many pings in a row without GOAWAY, and the connection goes on serving", async () => {
      const s = connect(`http://${daemon.address}`);
      session = s;
      let goaway = false;
      s.on("goaway", () => (goaway = true));
      expect(await healthCheck(s)).to.equal("0");
      // grpc-js enforces no minimum ping interval (no "too_many_pings"), so
      // clients' keepalive pings, with or without calls, are always answered.
      for (let i = 0; i < 20; i++) {
        await new Promise<void>((resolve, reject) => s.ping((err) => (err ? reject(err) : resolve())));
      }
      expect(await healthCheck(s)).to.equal("0");
      expect(goaway).to.equal(false);
    });
  });

  describe("--max-receive-message-size", () => {
    it("takes the largest valid Register and Update by default, with room to spare", () => {
      const session = {
        id: "i".repeat(LIMITS.idMaxChars),
        name: "\u{1F600}".repeat(LIMITS.nameMaxCodePoints),
        projectPath: "/".padEnd(LIMITS.projectPathMaxBytes, "p"),
        // As many entries as allowed, keys and values filling the total: the most bytes of map framing.
        metadata: new Map(
          Array.from({ length: LIMITS.metadataMaxEntries }, (_, i) => [
            `k${i}-`.padEnd(LIMITS.metadataKeyMaxBytes, "k"),
            "v".repeat(LIMITS.metadataMaxTotalBytes / LIMITS.metadataMaxEntries - LIMITS.metadataKeyMaxBytes),
          ]),
        ),
        createTime: undefined,
        updateTime: undefined,
        revision: 0n,
        ttl: { seconds: 86_400n, nanos: 0 },
        expireTime: undefined,
        tableUid: "",
      };
      const table = "t".repeat(LIMITS.tableNameMaxChars);
      const register = RegisterRequest.encode({ table, session, requestId: "r".repeat(128) }).finish().length;
      const update = UpdateRequest.encode({
        table,
        session,
        updateMask: ["name", "project_path", "metadata", "ttl"],
        expectedRevision: 2n ** 62n,
        requestId: "r".repeat(128),
        tableUid: "u".repeat(64),
      }).finish().length;
      const largest = Math.max(register, update);
      expect(largest).to.be.greaterThan(LIMITS.metadataMaxTotalBytes + LIMITS.projectPathMaxBytes);
      expect(largest).to.be.lessThan(0.6 * DEFAULT_CONFIG.maxReceiveMessageBytes);
    });
  });

  describe("server options", () => {
    it("passes every limit to grpc-js, leaving out the ones set to 0 (off)", () => {
      expect(serverOptions(DEFAULT_CONFIG)).to.deep.equal({
        "grpc.max_receive_message_length": 64 * 1024,
        "grpc.max_send_message_length": 16 * 1024 * 1024,
        "grpc.max_concurrent_streams": 100,
        "grpc.keepalive_time_ms": 60_000,
        "grpc.keepalive_timeout_ms": 20_000,
        "grpc.max_connection_idle_ms": 1_800_000,
      });
      expect(serverOptions({ ...DEFAULT_CONFIG, keepaliveTimeMs: 0, maxConnectionIdleMs: 0, maxConnectionAgeMs: 3_600_000 })).to.deep.equal(
        {
          "grpc.max_receive_message_length": 64 * 1024,
          "grpc.max_send_message_length": 16 * 1024 * 1024,
          "grpc.max_concurrent_streams": 100,
          "grpc.keepalive_timeout_ms": 20_000,
          "grpc.max_connection_age_ms": 3_600_000,
        },
      );
    });
  });
});
