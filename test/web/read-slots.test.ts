/**
 * --max-pending-requests over the HTTP door: its requests take the same read
 * slots as gRPC calls (one count across both listeners), wait unread for
 * one, and past the waiting cap are refused with gRPC's code and message,
 * written in the protocol each request speaks.
 */
import { once } from "node:events";
import { connect as connectHttp2, type ClientHttp2Session } from "node:http2";
import { connect, type Socket } from "node:net";

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";

import { SessionRegistry } from "../../src/gen/sessionregistry/v1/session_registry_pb.js";
import { BUSY_MESSAGE, HELD_PER_PENDING } from "../../src/transport/read-slots.js";
import { eventually, startTestDaemon, type TestDaemon } from "../helpers/daemon.js";
import { envelope } from "../helpers/envelope.js";
import { h2Call, halfSentCall } from "../helpers/h2.js";

const SERVICE = "sessionregistry.v1.SessionRegistry";

describe("the HTTP door's read slots (--max-pending-requests)", function () {
  this.timeout(30_000);
  let d: TestDaemon;
  const sockets: Socket[] = [];
  const sessions: ClientHttp2Session[] = [];

  const start = async (maxPendingRequests: number) => {
    d = await startTestDaemon({ http: true, config: { maxPendingRequests, requestTimeoutMs: 60_000, metricsListen: "127.0.0.1:0" } });
  };
  afterEach(async () => {
    for (const s of sockets.splice(0)) s.destroy();
    for (const s of sessions.splice(0)) s.destroy();
    await d.stop();
  });

  /** A Connect JSON request whose headers are sent and whose body never ends, on a connection of its own. */
  const halfSentHttp = async (method = "List"): Promise<Socket> => {
    const socket = connect(Number(new URL(d.daemon.httpUrl!).port), "127.0.0.1");
    sockets.push(socket);
    socket.on("error", () => undefined);
    socket.resume();
    await once(socket, "connect");
    socket.write(`POST /${SERVICE}/${method} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{`);
    return socket;
  };
  const h2Session = async (): Promise<ClientHttp2Session> => {
    const session = connectHttp2(`http://${d.address}`);
    sessions.push(session);
    session.on("error", () => undefined);
    await once(session, "connect");
    return session;
  };
  const metric = async (series: string): Promise<number> => {
    const text = await (await fetch(`http://${d.daemon.metricsAddress!}/metrics`)).text();
    return Number(new RegExp(`^${series.replace(/[{}]/g, "\\$&")} (\\S+)$`, "m").exec(text)?.[1]);
  };
  const until = (series: string, value: number) => eventually(async () => (await metric(series)) === value, `${series} = ${value}`);
  /** A Connect JSON List; `answered` turns true once its answer is in. */
  const list = () => {
    const state = { answered: false };
    const done = fetch(`${d.daemon.httpUrl!}/${SERVICE}/List`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    }).then(async (res) => {
      state.answered = true;
      return { status: res.status, json: (await res.json()) as { code?: string; message?: string; details?: unknown[] } };
    });
    return { state, done };
  };

  it("holds a gRPC call and an HTTP request behind half-sent HTTP requests, in one count, and reads them as slots free", async () => {
    await start(2);
    const halves = [await halfSentHttp(), await halfSentHttp()];
    await until("session_registry_pending_requests", 2);
    // An empty Lookup is INVALID_ARGUMENT once read.
    let grpcAnswered = false;
    const lookup = h2Call(d.address, `/${SERVICE}/Lookup`, new Uint8Array(0)).then((s) => ((grpcAnswered = true), s));
    const held = list();
    await until("session_registry_held_requests", 2);
    expect(grpcAnswered).to.equal(false);
    expect(held.state.answered).to.equal(false);
    halves[0]!.destroy();
    expect((await lookup).code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect((await held.done).status).to.equal(200);
    await until("session_registry_pending_requests", 1);
  });

  it("holds an HTTP request behind half-sent gRPC calls, and reads it once one goes", async () => {
    await start(2);
    // One per connection: a connection holding a single slot is never preempted.
    const streams = [halfSentCall(await h2Session(), `/${SERVICE}/Register`, 60 * 1024, 1024)];
    streams.push(halfSentCall(await h2Session(), `/${SERVICE}/Register`, 60 * 1024, 1024));
    await until("session_registry_pending_requests", 2);
    const held = list();
    await until("session_registry_held_requests", 1);
    expect(held.state.answered).to.equal(false);
    streams[0]!.close();
    expect((await held.done).status).to.equal(200);
  });

  it("refuses past HELD_PER_PENDING waiting per slot with gRPC's UNAVAILABLE and message, in each request's protocol, and serves again after", async () => {
    await start(1);
    for (let i = 0; i < 1 + HELD_PER_PENDING; i++) await halfSentHttp();
    await until("session_registry_held_requests", HELD_PER_PENDING);

    const json = await list().done;
    expect(json.status).to.equal(503);
    // No ErrorInfo: over gRPC the refusal carries none either.
    expect(json.json).to.deep.equal({ code: "unavailable", message: BUSY_MESSAGE });

    const stream = await fetch(`${d.daemon.httpUrl!}/${SERVICE}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: envelope({}),
    });
    const bytes = new Uint8Array(await stream.arrayBuffer());
    expect(bytes[0]).to.equal(2);
    expect(JSON.parse(new TextDecoder().decode(bytes.subarray(5)))).to.deep.equal({
      error: { code: "unavailable", message: BUSY_MESSAGE },
    });

    const web = createClient(SessionRegistry, createGrpcWebTransport({ baseUrl: d.daemon.httpUrl!, httpVersion: "1.1" }));
    const err = await web.getTable({ table: "default" }).then(
      () => expect.fail("gRPC-Web should be refused"),
      (e: unknown) => ConnectError.from(e),
    );
    expect(err.code).to.equal(Code.Unavailable);
    expect(err.rawMessage).to.equal(BUSY_MESSAGE);
    expect(err.details).to.deep.equal([]);

    const overGrpc = await h2Call(d.address, `/${SERVICE}/Lookup`, new Uint8Array(0));
    expect(overGrpc.code).to.equal(grpc.status.UNAVAILABLE);
    expect(overGrpc.message).to.equal(BUSY_MESSAGE);
    expect(overGrpc.fields["grpc-status-details-bin"]).to.equal(undefined);

    expect(await metric('session_registry_rpcs_total{method="List",code="UNAVAILABLE"}')).to.equal(1);
    expect(await metric('session_registry_rpcs_total{method="Watch",code="UNAVAILABLE"}')).to.equal(1);

    for (const s of sockets.splice(0)) s.destroy();
    await until("session_registry_held_requests", 0);
    expect((await list().done).status).to.equal(200);
  });
});
