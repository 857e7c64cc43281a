/**
 * etcd's current revision, read linearizably, over a node:http2 connection
 * of its own: what the read cache asks once per batch of reads
 * (read-cache.ts). The request is a Range of one key, count only, and the
 * answer's header is all that is read.
 *
 * Why not the etcd3 client every other call uses: a probe is sent alone,
 * one at a time, and through etcd3 and grpc-js one costs the daemon about
 * 2.5 times the CPU of the same request written here (its call stack,
 * filters, metadata and policy objects), about what 4 Lookups cost. The
 * probe's share of every cached read is that cost divided by the batch.
 *
 * The wire form is fixed and tiny: gRPC's 5-byte prefix around a
 * RangeRequest {key = 1, count_only = 9}; RangeResponse's header (field 1)
 * holds revision (field 3). test/etcd/revision-probe.test.ts checks these
 * numbers against etcd's rpc.proto. Failures, as the rest of the store reports
 * them: an error with gRPC code UNAVAILABLE (or DEADLINE_EXCEEDED) whose
 * message says what failed, which EtcdErrors words for the user.
 *
 * Endpoints: one connection at a time, to the first endpoint; one that
 * fails is dropped and the next probe connects to the next endpoint.
 */
import * as http2 from "node:http2";
import * as net from "node:net";
import { connect as connectTls } from "node:tls";

import { ClientClosedError } from "etcd3";

const RANGE_PATH = "/etcdserverpb.KV/Range";
/** A count-only Range's answer is a header of a few dozen bytes; anything past this is not one. */
const MAX_ANSWER_BYTES = 64 * 1024;

export interface RevisionProbeOptions {
  endpoints: readonly string[];
  /** Deadline of each probe, connecting included. */
  timeoutMs: number;
  tls?: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
}

/** A failed probe, with the gRPC code the store's error mapping reads (client.ts isUnavailable). */
export class ProbeError extends Error {
  constructor(
    readonly code: 4 | 14,
    message: string,
  ) {
    super(message);
    this.name = "ProbeError";
  }
}

export class RevisionProbe {
  private session: http2.ClientHttp2Session | undefined;
  private endpoint = 0;
  private closed = false;
  private readonly request: Buffer;

  constructor(
    private readonly options: RevisionProbeOptions,
    key: string,
  ) {
    this.request = frame(rangeCountOnly(Buffer.from(key, "utf8")));
  }

  /** etcd's revision as of a moment after this call; rejects with a ProbeError. */
  revision(): Promise<number> {
    // As the etcd3 client's calls fail once closed, so that the store words it the same ("the daemon is shutting down").
    if (this.closed) return Promise.reject(new ClientClosedError("KV"));
    const session = this.connection();
    return new Promise<number>((resolve, reject) => {
      const chunks: Buffer[] = [];
      let received = 0;
      let status: string | undefined;
      let message = "";
      let settled = false;
      let stream: http2.ClientHttp2Stream | undefined;
      const fail = (err: ProbeError) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        // The connection is suspect: the next probe opens another, to the next endpoint.
        this.drop(session);
        reject(err);
      };
      const timer = setTimeout(() => {
        fail(new ProbeError(4, `deadline exceeded after ${this.options.timeoutMs} ms`));
        stream?.close(http2.constants.NGHTTP2_CANCEL);
      }, this.options.timeoutMs);
      try {
        stream = session.request({ ":method": "POST", ":path": RANGE_PATH, "content-type": "application/grpc", te: "trailers" });
      } catch (err) {
        // The connection closed between being chosen and this request.
        fail(new ProbeError(14, err instanceof Error ? err.message : String(err)));
        return;
      }
      const take = (headers: http2.IncomingHttpHeaders) => {
        if (headers["grpc-status"] === undefined) return;
        status = String(headers["grpc-status"]);
        message = percentDecoded(String(headers["grpc-message"] ?? ""));
      };
      stream.on("response", (headers) => {
        const http = Number(headers[":status"]);
        if (http !== 200) message = `HTTP status ${http}`;
        take(headers);
      });
      stream.on("trailers", take);
      stream.on("data", (chunk: Buffer) => {
        received += chunk.length;
        if (received <= MAX_ANSWER_BYTES) chunks.push(chunk);
        else {
          fail(new ProbeError(14, `answered a count-only Range with more than ${MAX_ANSWER_BYTES} bytes`));
          stream.close(http2.constants.NGHTTP2_CANCEL);
        }
      });
      stream.on("error", (err: Error) => fail(new ProbeError(14, err.message)));
      stream.on("close", () => {
        if (settled) return;
        if (status !== "0") {
          fail(
            new ProbeError(status === "4" ? 4 : 14, message || `the stream ended (HTTP/2 code ${stream.rstCode}) without a gRPC status`),
          );
          return;
        }
        const revision = headerRevision(Buffer.concat(chunks));
        if (revision === undefined) {
          fail(new ProbeError(14, "answered a Range without a revision"));
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve(revision);
      });
      stream.end(this.request);
    });
  }

  close(): void {
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    session?.destroy();
  }

  /** The open connection, or a new one to the current endpoint. */
  private connection(): http2.ClientHttp2Session {
    if (this.session !== undefined && !this.session.closed && !this.session.destroyed) return this.session;
    const url = this.options.endpoints[this.endpoint % this.options.endpoints.length]!;
    const { hostname, port, protocol } = new URL(url);
    const host = hostname.replace(/^\[(.*)\]$/, "$1");
    const tls = this.options.tls;
    const session = http2.connect(url, {
      // Nagle would hold the small request back for the peer's delayed ACK (grpc-js turns it off too).
      createConnection: () =>
        protocol === "https:"
          ? connectTls({
              host,
              port: Number(port || 443),
              servername: net.isIP(host) === 0 ? host : undefined,
              ALPNProtocols: ["h2"],
              ...(tls?.ca !== undefined ? { ca: tls.ca } : {}),
              ...(tls?.cert !== undefined ? { cert: tls.cert } : {}),
              ...(tls?.key !== undefined ? { key: tls.key } : {}),
            }).setNoDelay(true)
          : net.connect({ host, port: Number(port || 80), noDelay: true }),
    });
    // A failed connection fails the probes on it (their streams error); keep the process up.
    session.on("error", () => this.drop(session));
    // etcd going away (e.g. a restart) lets the probe on its way finish; the next one opens a new connection.
    session.on("goaway", () => this.retire(session));
    session.on("close", () => this.drop(session));
    // Probes are what keep the daemon busy, not this connection.
    session.unref();
    this.session = session;
    return session;
  }

  private retire(session: http2.ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = undefined;
    session.close();
  }

  private drop(session: http2.ClientHttp2Session): void {
    if (this.session !== session) return;
    this.session = undefined;
    this.endpoint++;
    session.destroy();
  }
}

/** grpc-message is percent-encoded; a malformed one is shown as it came. */
function percentDecoded(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** RangeRequest { key (1), count_only (9): true } in protobuf's wire form: tag bytes are field << 3 | wire type. */
export function rangeCountOnly(key: Buffer): Buffer {
  return Buffer.concat([Buffer.from([(1 << 3) | 2]), varint(key.length), key, Buffer.from([(9 << 3) | 0, 0x01])]);
}

/** gRPC's length-prefixed message: a 0 flag byte (uncompressed), the length, the bytes. */
function frame(message: Buffer): Buffer {
  const out = Buffer.alloc(5 + message.length);
  out.writeUInt32BE(message.length, 1);
  message.copy(out, 5);
  return out;
}

function varint(n: number): Buffer {
  const bytes: number[] = [];
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n = Math.floor(n / 128);
  }
  bytes.push(n);
  return Buffer.from(bytes);
}

/** header.revision of a framed RangeResponse; undefined when the bytes hold none. */
export function headerRevision(body: Buffer): number | undefined {
  if (body.length < 5 || body[0] !== 0) return undefined;
  const end = 5 + body.readUInt32BE(1);
  if (end > body.length) return undefined;
  try {
    const header = findField(body, 5, end, 1);
    if (header?.wireType !== 2) return undefined;
    const revision = findField(body, header.start, header.end, 3);
    return revision?.wireType === 0 ? revision.value : undefined;
  } catch {
    // Truncated or not protobuf.
    return undefined;
  }
}

interface Field {
  wireType: number;
  /** A varint's value; a length-delimited field's length. */
  value: number;
  /** A length-delimited field's bytes are buf[start, end). */
  start: number;
  end: number;
}

/** The first field numbered `num` in buf[start, end); throws RangeError on bytes that are not protobuf. */
function findField(buf: Buffer, start: number, end: number, num: number): Field | undefined {
  const at = { pos: start };
  while (at.pos < end) {
    const tag = readVarint(buf, at, end);
    const wireType = tag & 7;
    let value = 0;
    if (wireType === 0) value = readVarint(buf, at, end);
    else if (wireType === 2) value = readVarint(buf, at, end);
    else if (wireType !== 1 && wireType !== 5) throw new RangeError(`wire type ${wireType}`);
    const from = at.pos;
    at.pos += wireType === 2 ? value : wireType === 1 ? 8 : wireType === 5 ? 4 : 0;
    if (at.pos > end) throw new RangeError("field past the end");
    if (Math.floor(tag / 8) === num) return { wireType, value, start: from, end: at.pos };
  }
  return undefined;
}

/** Numbers up to 2^53 exactly: etcd's revisions and lengths stay far below. */
function readVarint(buf: Buffer, at: { pos: number }, end: number): number {
  let result = 0;
  let scale = 1;
  for (;;) {
    if (at.pos >= end) throw new RangeError("truncated varint");
    const b = buf[at.pos++]!;
    result += (b & 0x7f) * scale;
    if (b < 0x80) return result;
    scale *= 128;
  }
}
