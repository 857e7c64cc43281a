/**
 * The HTTP door under the daemon's rules beyond single calls: https with the
 * gRPC listener's TLS files, metrics for its calls and its connections,
 * shutdown ending its watches within the grace, a watcher too slow to read,
 * a stalled request, and the connection cap.
 */
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { request as httpsRequest } from "node:https";

import { expect } from "chai";

import { makeTestCerts, type TestCerts } from "../daemon/certs.js";
import { eventually, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { envelope, unenvelope } from "../helpers/envelope.js";

const SERVICE = "sessionregistry.v1.SessionRegistry";

/** The end-of-stream message of a Connect JSON stream, once the server ends it. */
async function streamEnd(res: Response): Promise<{ error?: { code: string; details?: { debug?: { reason?: string } }[] } }> {
  const { end } = unenvelope(new Uint8Array(await res.arrayBuffer()));
  if (end === undefined) throw new Error("the stream ended without its end-of-stream message");
  return end;
}

describe("the HTTP door's limits", function () {
  this.timeout(30_000);

  describe("in the daemon's connection metrics", () => {
    let d: TestDaemon;
    const sockets: Socket[] = [];
    afterEach(async () => {
      for (const s of sockets.splice(0)) s.destroy();
      await d.stop();
    });
    const metric = async (series: string): Promise<number> => {
      const text = await (await fetch(`http://${d.daemon.metricsAddress!}/metrics`)).text();
      return Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1] ?? "0");
    };
    const until = (series: string, value: number) => eventually(async () => (await metric(series)) === value, `${series} = ${value}`);
    /** A TCP connection to the HTTP listener; resolves with it and with all it receives until it closes. */
    const raw = async (): Promise<{ socket: Socket; received: Promise<string> }> => {
      const socket = connect(Number(new URL(d.daemon.httpUrl!).port), "127.0.0.1");
      sockets.push(socket);
      socket.on("error", () => undefined);
      let text = "";
      socket.setEncoding("latin1").on("data", (chunk: string) => (text += chunk));
      const received = new Promise<string>((resolve) => socket.once("close", () => resolve(text)));
      await once(socket, "connect");
      return { socket, received };
    };

    it("counts HTTP connections in session_registry_connections, by listener, and those dropped at --max-connections", async () => {
      d = await startTestDaemon({ http: true, config: { metricsListen: "127.0.0.1:0", maxConnections: 2, requestTimeoutMs: 60_000 } });
      await d.client().serverInfo();
      const open = [await raw(), await raw()];
      await until('session_registry_transport_connections{transport="http"}', 2);
      expect(await metric('session_registry_transport_connections{transport="grpc"}')).to.equal(1);
      expect(await metric("session_registry_connections")).to.equal(3);
      // A third on a cap of two: node drops it as it arrives.
      await (
        await raw()
      ).received;
      expect(await metric('session_registry_connections_closed_total{reason="max_connections"}')).to.equal(1);
      for (const o of open) o.socket.destroy();
      await until('session_registry_transport_connections{transport="http"}', 0);
      expect(await metric("session_registry_connections")).to.equal(1);
    });

    it("answers 408 to a connection whose first request or whose request body is late, and counts them as setup and request timeouts", async () => {
      d = await startTestDaemon({ http: true, config: { metricsListen: "127.0.0.1:0", requestTimeoutMs: 300 } });
      const silent = await raw();
      expect(await silent.received).to.match(/^HTTP\/1\.1 408 /);
      const stalled = await raw();
      stalled.socket.write(`POST /${SERVICE}/List HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
      expect(await stalled.received).to.match(/^HTTP\/1\.1 408 /);
      expect(await metric('session_registry_connections_closed_total{reason="setup_timeout"}')).to.equal(1);
      expect(await metric('session_registry_connections_closed_total{reason="request_timeout"}')).to.equal(1);
    });
  });

  describe("with TLS files", () => {
    let certs: TestCerts;
    let d: TestDaemon;
    before(async () => {
      certs = await makeTestCerts();
      d = await startTestDaemon({ http: true, config: { tlsCert: certs.server.certPath, tlsKey: certs.server.keyPath } });
    });
    after(async () => {
      await d.stop();
      await certs.remove();
    });

    it("serves https with the same certificate as gRPC", async () => {
      expect(d.daemon.httpUrl).to.match(/^https:\/\/127\.0\.0\.1:\d+$/);
      const url = new URL(`${d.daemon.httpUrl!}/${SERVICE}/GetServerInfo`);
      const body = await new Promise<string>((resolve, reject) => {
        const req = httpsRequest(url, { method: "POST", ca: certs.ca.cert, headers: { "content-type": "application/json" } }, (res) => {
          let text = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
          res.on("end", () => resolve(text));
        });
        req.on("error", reject);
        req.end("{}");
      });
      expect(JSON.parse(body)).to.include({ store: "memory" });
    });
  });

  describe("on a plaintext daemon with metrics", () => {
    let d: TestDaemon;
    before(async () => {
      d = await startTestDaemon({
        http: true,
        config: { metricsListen: "127.0.0.1:0", requestTimeoutMs: 500, maxConnections: 4, watchQueue: 1, shutdownGraceMs: 5000 },
      });
    });
    after(async () => {
      await d.stop();
    });
    /** A Connect JSON call; resolves once its whole answer is read. */
    const post = (method: string, body: unknown) =>
      fetch(`${d.daemon.httpUrl!}/${SERVICE}/${method}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      }).then(async (res) => ({ status: res.status, text: await res.text() }));

    it("counts its calls in the same metrics as gRPC's", async () => {
      await post("GetTable", { table: "nope" });
      const text = await (await fetch(`http://${d.daemon.metricsAddress!}/metrics`)).text();
      expect(text).to.match(/session_registry_rpcs_total\{method="GetTable",code="NOT_FOUND"\} 1/);
    });

    it("ends a stalled request within --request-timeout and keeps serving", async () => {
      const { port } = new URL(d.daemon.httpUrl!);
      const socket = connect(Number(port), "127.0.0.1");
      // Flowing, so that the server's close reaches 'close' here.
      socket.resume();
      socket.write(`POST /${SERVICE}/List HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
      const started = Date.now();
      await new Promise<void>((resolve) => socket.on("close", () => resolve()).on("error", () => resolve()));
      expect(Date.now() - started).to.be.lessThan(5000);
      expect((await post("List", {})).status).to.equal(200);
    });

    it("ends a watcher that does not read as WATCHER_TOO_SLOW", async () => {
      const { port } = new URL(d.daemon.httpUrl!);
      // A client that sends its Watch and never reads: the socket's buffers fill, then the bounded queue.
      const socket = connect(Number(port), "127.0.0.1");
      socket.pause();
      const body = envelope({});
      socket.write(
        `POST /${SERVICE}/Watch HTTP/1.1\r\nhost: x\r\ncontent-type: application/connect+json\r\ncontent-length: ${body.length}\r\n\r\n`,
      );
      socket.write(body);
      await new Promise((resolve) => setTimeout(resolve, 200));
      const metadata = { a: "x".repeat(4000), b: "y".repeat(4000), c: "z".repeat(4000) };
      for (let i = 0; i < 400; i++) {
        await post("Register", { session: { id: `s${i}`, projectPath: `/slow/${i}`, metadata, ttl: "60s" } });
        await post("Remove", { id: `s${i}` });
        if (i % 50 === 49) {
          const text = await (await fetch(`http://${d.daemon.metricsAddress!}/metrics`)).text();
          if (/rpcs_total\{method="Watch",code="RESOURCE_EXHAUSTED"\} 1/.test(text)) break;
        }
      }
      const text = await (await fetch(`http://${d.daemon.metricsAddress!}/metrics`)).text();
      expect(text).to.match(/session_registry_rpcs_total\{method="Watch",code="RESOURCE_EXHAUSTED"\} 1/);
      expect(text).to.match(/session_registry_rejections_total\{[^}]*reason="WATCHER_TOO_SLOW"[^}]*\} 1/);
      socket.destroy();
    });

    it("closes connections past --max-connections as they arrive, and serves again once they close", async () => {
      const { port } = new URL(d.daemon.httpUrl!);
      // Six raw connections on a cap of four (fetch's pooled ones count too): at least two are closed unserved.
      const sockets = Array.from({ length: 6 }, () => connect(Number(port), "127.0.0.1"));
      const closed = await Promise.all(
        sockets.map(
          (s) =>
            new Promise<boolean>((resolve) => {
              const timer = setTimeout(() => resolve(false), 500);
              s.on("close", () => {
                clearTimeout(timer);
                resolve(true);
              });
              s.on("error", () => undefined);
            }),
        ),
      );
      expect(closed.filter((c) => c).length).to.be.at.least(2);
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect((await post("List", {})).status).to.equal(200);
    });

    it("ends open watches with UNAVAILABLE (SHUTTING_DOWN) at shutdown, well within the grace", async () => {
      const res = await fetch(`${d.daemon.httpUrl!}/${SERVICE}/Watch`, {
        method: "POST",
        headers: { "content-type": "application/connect+json" },
        body: envelope({}),
      });
      const ended = streamEnd(res);
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = Date.now();
      await d.stop();
      expect(Date.now() - started).to.be.lessThan(3000);
      const end = await ended;
      expect(end.error?.code).to.equal("unavailable");
      expect(end.error?.details?.[0]?.debug?.reason).to.equal("SHUTTING_DOWN");
    });
  });
});
