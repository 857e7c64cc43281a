/**
 * The least a gRPC unary call needs, spoken directly over one node:http2
 * connection: POST with the gRPC headers, one length-prefixed message, and
 * the grpc-status from the trailers (or from the headers of a
 * trailers-only answer). The response message is read and dropped.
 */
import * as http2 from "node:http2";
import * as net from "node:net";

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_TE, HTTP2_HEADER_STATUS } = http2.constants;

export class GrpcCallError extends Error {
  constructor(
    readonly code: number,
    details: string,
  ) {
    super(`gRPC status ${code}: ${details}`);
  }
}

export class H2GrpcChannel {
  private readonly session: http2.ClientHttp2Session;
  private readonly ready: Promise<void>;

  constructor(address: string) {
    const { host, port } = splitAddress(address);
    this.session = http2.connect(`http://${address}`, {
      // As grpc-js does for its own connections: without it, Nagle holds a small write back until the peer's (delayed) ACK.
      createConnection: () => net.connect({ host, port, noDelay: true }),
    });
    this.ready = new Promise((resolve, reject) => {
      this.session.once("connect", () => resolve());
      this.session.once("error", reject);
    });
    // A session error after connecting fails the calls on it; they report it.
    this.session.on("error", () => {});
  }

  connected(): Promise<void> {
    return this.ready;
  }

  unary(path: string, message: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      const stream = this.session.request({
        [HTTP2_HEADER_METHOD]: "POST",
        [HTTP2_HEADER_PATH]: path,
        [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
        [HTTP2_HEADER_TE]: "trailers",
      });
      let code: number | undefined;
      let details = "";
      const take = (headers: http2.IncomingHttpHeaders) => {
        const s = headers["grpc-status"];
        if (s !== undefined) {
          code = Number(s);
          details = decodeURIComponent(String(headers["grpc-message"] ?? ""));
        }
      };
      stream.on("response", (headers) => {
        if (Number(headers[HTTP2_HEADER_STATUS]) !== 200) {
          code = 13;
          details = `HTTP status ${String(headers[HTTP2_HEADER_STATUS])}`;
        }
        take(headers);
      });
      stream.on("trailers", take);
      stream.on("data", () => {});
      stream.once("error", reject);
      stream.once("close", () => {
        if (code === 0) resolve();
        else reject(new GrpcCallError(code ?? 2, code === undefined ? "the stream closed without a grpc-status" : details));
      });
      stream.end(frame(message));
    });
  }

  /**
   * A server-streaming call: `onMessage` gets each response message's bytes
   * (the 5-byte prefixes taken off, messages split or joined across DATA
   * frames as they come), `onEnd` the call's end. Returns a cancel function.
   */
  serverStream(path: string, message: Uint8Array, onMessage: (bytes: Buffer) => void, onEnd: (err?: Error) => void): () => void {
    const stream = this.session.request({
      [HTTP2_HEADER_METHOD]: "POST",
      [HTTP2_HEADER_PATH]: path,
      [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
      [HTTP2_HEADER_TE]: "trailers",
    });
    let pending: Buffer = Buffer.alloc(0);
    stream.on("data", (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const length = pending.readUInt32BE(1);
        if (pending.length < 5 + length) break;
        onMessage(pending.subarray(5, 5 + length));
        pending = pending.subarray(5 + length);
      }
    });
    stream.once("error", (err: Error) => onEnd(err));
    stream.once("close", () => onEnd());
    stream.end(frame(message));
    return () => stream.close(http2.constants.NGHTTP2_CANCEL);
  }

  close(): void {
    this.session.close();
  }
}

/** A gRPC length-prefixed message, not compressed. */
function frame(message: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + message.length);
  out[0] = 0;
  out.writeUInt32BE(message.length, 1);
  out.set(message, 5);
  return out;
}

/** "127.0.0.1:50051" or "[::1]:50051". */
function splitAddress(address: string): { host: string; port: number } {
  const colon = address.lastIndexOf(":");
  return { host: address.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: Number(address.slice(colon + 1)) };
}
