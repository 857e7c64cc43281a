/**
 * One gRPC call over node:http2 directly, for bytes no gRPC library sends
 * (a bad gzip frame) and for what libraries hide: the status fields exactly
 * as the daemon put them on the wire, and their size.
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from "node:http2";

import { BadRequest, ErrorInfo } from "../../src/gen/google/rpc/error_details.js";
import { Status } from "../../src/gen/google/rpc/status.js";

export interface WireStatus {
  /** grpc-status as a number. */
  code: number;
  /** grpc-message, percent-decoded. */
  message: string;
  /** The header block that carried the status (trailers, or the headers of a trailers-only answer). */
  fields: IncomingHttpHeaders;
  /** Bytes of grpc-status, grpc-message and grpc-status-details-bin, names and values, as sent. */
  statusBytes: number;
}

const STATUS_FIELDS = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/**
 * Sends `message` as the one request of `path` (e.g.
 * "/grpc.health.v1.Health/Check") and returns the status the daemon ends
 * the call with, with `headers` added. `compressed` sets the frame's compressed flag with
 * grpc-encoding: gzip, whatever the bytes are.
 */
export function h2Call(
  address: string,
  path: string,
  message: Uint8Array,
  opts: { compressed?: boolean; headers?: Record<string, string> } = {},
): Promise<WireStatus> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://${address}`);
    session.on("error", reject);
    const headers: Record<string, string> = {
      [constants.HTTP2_HEADER_METHOD]: "POST",
      [constants.HTTP2_HEADER_PATH]: path,
      "content-type": "application/grpc",
      te: "trailers",
    };
    if (opts.compressed) headers["grpc-encoding"] = "gzip";
    Object.assign(headers, opts.headers);
    const stream = session.request(headers);
    let statusFields: IncomingHttpHeaders | undefined;
    const take = (fields: IncomingHttpHeaders) => {
      if (fields["grpc-status"] !== undefined) statusFields = fields;
    };
    stream.on("response", take);
    stream.on("trailers", take);
    stream.on("data", () => {});
    stream.on("error", reject);
    stream.on("close", () => {
      session.close();
      if (statusFields === undefined) {
        reject(new Error(`${path}: the stream closed without a grpc-status`));
        return;
      }
      let statusBytes = 0;
      for (const name of STATUS_FIELDS) {
        const value = statusFields[name];
        if (typeof value === "string") statusBytes += name.length + Buffer.byteLength(value, "latin1");
      }
      resolve({
        code: Number(statusFields["grpc-status"]),
        message: decodeURIComponent(String(statusFields["grpc-message"] ?? "")),
        fields: statusFields,
        statusBytes,
      });
    });
    const frame = Buffer.alloc(5 + message.byteLength);
    frame.writeUInt8(opts.compressed ? 1 : 0, 0);
    frame.writeUInt32BE(message.byteLength, 1);
    frame.set(message, 5);
    stream.end(frame);
  });
}

/** The google.rpc.Status of `grpc-status-details-bin`, with its ErrorInfo reasons and BadRequest violations. */
export function statusDetails(wire: WireStatus): { reasons: string[]; violations: { field: string; description: string }[] } {
  const value = wire.fields["grpc-status-details-bin"];
  if (typeof value !== "string") throw new Error(`no grpc-status-details-bin with status ${wire.code} ${JSON.stringify(wire.message)}`);
  const decoded = Status.decode(Buffer.from(value, "base64"));
  const reasons: string[] = [];
  const violations: { field: string; description: string }[] = [];
  for (const any of decoded.details) {
    if (any.typeUrl === "type.googleapis.com/google.rpc.ErrorInfo") reasons.push(ErrorInfo.decode(any.value).reason);
    if (any.typeUrl === "type.googleapis.com/google.rpc.BadRequest") {
      violations.push(...BadRequest.decode(any.value).fieldViolations.map((v) => ({ field: v.field, description: v.description })));
    }
  }
  return { reasons, violations };
}

/**
 * Opens a call on `session` whose request announces `announced` bytes and
 * sends `sent` of them, never finishing: what a client that stalls on
 * purpose leaves the daemon holding.
 */
export function halfSentCall(
  session: ClientHttp2Session,
  path: string,
  announced: number,
  sent: number,
  token?: string,
): ClientHttp2Stream {
  const stream = session.request({
    ":method": "POST",
    ":path": path,
    "content-type": "application/grpc",
    te: "trailers",
    ...(token !== undefined ? { authorization: `Bearer ${token}` } : {}),
  });
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(announced, 1);
  stream.write(Buffer.concat([prefix, Buffer.alloc(sent, 0x0a)]));
  return stream;
}
