/**
 * The least a gRPC unary call needs, spoken directly over one node:http2
 * connection: POST with the gRPC headers, one length-prefixed message, and
 * the grpc-status from the trailers (or from the headers of a
 * trailers-only answer). The response message is read and dropped.
 */
import * as http2 from "node:http2";

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_TE,
  HTTP2_HEADER_STATUS,
} = http2.constants;

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
    this.session = http2.connect(`http://${address}`);
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
      const frame = Buffer.allocUnsafe(5 + message.length);
      frame[0] = 0; // not compressed
      frame.writeUInt32BE(message.length, 1);
      frame.set(message, 5);
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
          details = `HTTP status ${headers[HTTP2_HEADER_STATUS]}`;
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
      stream.end(frame);
    });
  }

  close(): void {
    this.session.close();
  }
}
