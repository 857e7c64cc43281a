/**
 * The service definition's (de)serializers, replaced where the generated
 * ones fall short of a daemon's needs:
 *
 * - Decoding never throws. grpc-js answers a throwing decoder with a bare
 *   INTERNAL; bad bytes are the client's fault, so the handler gets a
 *   MalformedRequest and answers INVALID_ARGUMENT with the usual details.
 * - Encoding reuses one BinaryWriter for every response. The generated
 *   serializer builds a new writer per message, grows its buffer from a few
 *   bytes by doubling (a fresh Uint8Array each time), then copies the result
 *   twice (finish() slices, Buffer.from() copies). The shared writer keeps
 *   its grown buffer (up to a bound); the one slice finish() makes is
 *   wrapped, not copied.
 *   Encoding is synchronous, so calls cannot interleave on the writer.
 */
import type { MethodDefinition, ServiceDefinition } from "@grpc/grpc-js";
import { BinaryWriter } from "@bufbuild/protobuf/wire";

import * as messages from "../gen/sessionregistry/v1/session_registry.js";

/** What the decoder hands a handler when the request bytes do not parse. */
export class MalformedRequest {
  constructor(
    readonly messageType: string,
    readonly detail: string,
  ) {}
}

interface Encoder {
  encode(message: unknown, writer?: BinaryWriter): BinaryWriter;
}

let writer = new BinaryWriter();
/** A writer that has grown past this for a large message (a List page, a snapshot) is dropped, not kept. */
const MAX_RETAINED_BYTES = 64 * 1024;

/** The method's response encoder; every response type is the method's name + "Response". */
function encoderOf(methodName: string): Encoder {
  const encoder = (messages as unknown as Record<string, Partial<Encoder>>)[`${methodName}Response`];
  if (typeof encoder?.encode !== "function") throw new Error(`no generated ${methodName}Response to encode ${methodName}'s responses`);
  return encoder as Encoder;
}

export function withCodecs<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as [string, MethodDefinition<unknown, unknown>][]) {
    // path is "/sessionregistry.v1.SessionRegistry/GetTable"; every request type is the method's name + "Request".
    const methodName = method.path.slice(method.path.lastIndexOf("/") + 1);
    const messageType = `sessionregistry.v1.${methodName}Request`;
    const response = encoderOf(methodName);
    out[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(messageType, err instanceof Error ? err.message : String(err));
        }
      },
      responseSerialize: (value: unknown) => {
        let bytes: Uint8Array;
        try {
          bytes = response.encode(value, writer).finish();
        } catch (err) {
          // A throw mid-message (a value out of range) leaves the writer mid-fork: start clean.
          writer.finish();
          throw err;
        }
        if (bytes.byteLength > MAX_RETAINED_BYTES) writer = new BinaryWriter();
        return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      },
    };
  }
  return out as D;
}
