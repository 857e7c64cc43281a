/**
 * The service definition's (de)serializers, replaced where the generated
 * ones fall short of a daemon's needs:
 *
 * - Decoding never throws. grpc-js answers a throwing decoder with a bare
 *   INTERNAL; bad bytes are the client's fault, so the handler gets a
 *   MalformedRequest and answers INVALID_ARGUMENT with the usual details.
 *   The services the daemon serves but did not generate (health,
 *   reflection) get the same through refusingUndecodable.
 * - Strings must be valid UTF-8. The generated decoder would replace bad
 *   bytes with U+FFFD, so that `/a\xffb` and `/a\xfeb` became one project
 *   path. Here each string is decoded strictly; a request with a bad one
 *   becomes a MalformedRequest naming each such field (`session.project_path`,
 *   `session.metadata` with the key, ...), answered like any bad field. The
 *   handler answers it only after authenticating the call, as any request.
 * - Encoding reuses one BinaryWriter for every response. The generated
 *   serializer builds a new writer per message, grows its buffer from a few
 *   bytes by doubling (a fresh Uint8Array each time), then copies the result
 *   twice (finish() slices, Buffer.from() copies). The shared writer keeps
 *   its grown buffer (up to a bound); the one slice finish() makes is
 *   wrapped, not copied.
 *   Encoding is synchronous, so calls cannot interleave on the writer.
 * - A Watch message shared by many watchers (watch-stream.ts builds one per
 *   event) is encoded once: its bytes live beside it while any watcher's
 *   queue holds it. grpc-js copies them into each stream's frame and never
 *   changes them.
 */
import type {
  MethodDefinition,
  sendUnaryData,
  ServerDuplexStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";

import { invalidArgument, malformedRequest, quote, type FieldViolation, type RegistryError } from "../core/errors.js";
import * as messages from "../gen/sessionregistry/v1/session_registry.js";
import { GRPC_CODE, statusError } from "./status.js";

/**
 * What the decoder hands a handler when the request bytes do not parse, or
 * parse with strings that are not UTF-8 (`violations` names those fields).
 */
export class MalformedRequest {
  constructor(
    readonly messageType: string,
    readonly detail: string,
    readonly violations: readonly FieldViolation[] = [],
  ) {}

  /** The INVALID_ARGUMENT to answer with. */
  error(): RegistryError {
    return this.violations.length > 0 ? invalidArgument(this.violations) : malformedRequest(this.messageType, this.detail);
  }
}

interface Encoder {
  encode(message: unknown, writer?: BinaryWriter): BinaryWriter;
}

interface Decoder {
  decode(input: BinaryReader | Uint8Array, length?: number): unknown;
}

// A leading U+FEFF in a protobuf string is text, not a byte-order mark (as in the library's own decoder).
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const lossyUtf8 = new TextDecoder("utf-8", { ignoreBOM: true });

/**
 * Decodes one request, strictly: returns the message and the strings (as the
 * lossy decoding spells them, with U+FFFD) whose bytes were not UTF-8. Nested
 * messages and map entries are read with the same reader, so its decoder
 * sees every string of the request.
 */
function decodeStrictly(decoder: Decoder, bytes: Uint8Array): { message: unknown; invalid: Set<string> } {
  const invalid = new Set<string>();
  const reader = new BinaryReader(bytes, (chunk: Uint8Array) => {
    try {
      return strictUtf8.decode(chunk);
    } catch {
      const text = lossyUtf8.decode(chunk);
      invalid.add(text);
      return text;
    }
  });
  return { message: decoder.decode(reader), invalid };
}

/** camelCase (as decoded) to the proto's snake_case field name. */
function snake(name: string): string {
  return name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}

/**
 * Names the fields of a decoded request that hold one of the `invalid`
 * strings, by the proto's paths: `session.project_path`, `update_mask`, the
 * oneof member's own name (`project_path` of a Lookup), and for a map the
 * map's field with the entry's key in the description.
 */
function invalidStrings(message: unknown, invalid: ReadonlySet<string>, prefix = ""): FieldViolation[] {
  const found: FieldViolation[] = [];
  const bad = "is not valid UTF-8; send text encoded as UTF-8";
  if (typeof message !== "object" || message === null || message instanceof Date || message instanceof Uint8Array) return found;
  const fields: [string, unknown][] =
    "$case" in message && "value" in message ? [[String(message.$case), message.value]] : Object.entries(message);
  for (const [name, value] of fields) {
    const field = prefix + snake(name);
    if (typeof value === "string") {
      if (invalid.has(value)) found.push({ field, description: bad });
    } else if (Array.isArray(value)) {
      if (value.some((item) => typeof item === "string" && invalid.has(item))) found.push({ field, description: `has a path that ${bad}` });
    } else if (value instanceof Map) {
      for (const [key, entry] of value as Map<unknown, unknown>) {
        if (typeof key === "string" && invalid.has(key)) found.push({ field, description: `key ${quote(key)} ${bad}` });
        if (typeof entry === "string" && invalid.has(entry))
          found.push({ field, description: `value of key ${quote(String(key))} ${bad}` });
      }
    } else if (typeof value === "object" && value !== null && !("$case" in value)) {
      found.push(...invalidStrings(value, invalid, `${field}.`));
    } else {
      // A oneof: its members are fields of this message, not of a nested one.
      found.push(...invalidStrings(value, invalid, prefix));
    }
  }
  return found;
}

let writer = new BinaryWriter();
/** Encoded Watch messages, by message; an entry goes when its message is garbage. */
const encodedWatchMessages = new WeakMap<object, Buffer>();
/** A writer that has grown past this for a large message (a List page, a snapshot) is dropped, not kept. */
const MAX_RETAINED_BYTES = 64 * 1024;

/** The method's request decoder; every request type is the method's name + "Request". */
function decoderOf(methodName: string): Decoder {
  const decoder = (messages as unknown as Record<string, Partial<Decoder>>)[`${methodName}Request`];
  if (typeof decoder?.decode !== "function") throw new Error(`no generated ${methodName}Request to decode ${methodName}'s requests`);
  return decoder as Decoder;
}

/** The method's response encoder; every response type is the method's name + "Response". */
function encoderOf(methodName: string): Encoder {
  const encoder = (messages as unknown as Record<string, Partial<Encoder>>)[`${methodName}Response`];
  if (typeof encoder?.encode !== "function") throw new Error(`no generated ${methodName}Response to encode ${methodName}'s responses`);
  return encoder as Encoder;
}

/** How one SessionRegistry method's messages go to and from bytes, by the rules at the top of this file. */
export interface RegistryCodec {
  /** The request, or a MalformedRequest; never throws. */
  decode: (bytes: Uint8Array) => unknown;
  encode: (value: unknown) => Buffer;
}

/** The codec of a SessionRegistry method, by its name in the proto (e.g. "GetTable"). */
export function registryCodec(methodName: string): RegistryCodec {
  const messageType = `sessionregistry.v1.${methodName}Request`;
  const request = decoderOf(methodName);
  const response = encoderOf(methodName);
  const encode = (value: unknown): Buffer => {
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
  };
  const shared = methodName === "Watch";
  return {
    decode: (bytes) => {
      let decoded: { message: unknown; invalid: Set<string> };
      try {
        decoded = decodeStrictly(request, bytes);
      } catch (err) {
        return new MalformedRequest(messageType, err instanceof Error ? err.message : String(err));
      }
      if (decoded.invalid.size === 0) return decoded.message;
      return new MalformedRequest(messageType, "a string is not valid UTF-8", invalidStrings(decoded.message, decoded.invalid));
    },
    encode: (value) => {
      if (!shared || typeof value !== "object" || value === null) return encode(value);
      let bytes = encodedWatchMessages.get(value);
      if (bytes === undefined) {
        bytes = encode(value);
        encodedWatchMessages.set(value, bytes);
      }
      return bytes;
    },
  };
}

export function withCodecs<D extends ServiceDefinition>(definition: D): D {
  const out: Record<string, MethodDefinition<unknown, unknown>> = {};
  for (const [name, method] of Object.entries(definition) as [string, MethodDefinition<unknown, unknown>][]) {
    // path is "/sessionregistry.v1.SessionRegistry/GetTable".
    const codec = registryCodec(method.path.slice(method.path.lastIndexOf("/") + 1));
    out[name] = { ...method, requestDeserialize: codec.decode, responseSerialize: codec.encode };
  }
  return out as D;
}

type AnyHandler = (call: unknown, callback?: unknown) => void;

/**
 * Wraps a service the daemon serves but did not generate (health,
 * reflection) so that a request whose bytes do not decode is answered
 * INVALID_ARGUMENT with the usual details, as the registry's own methods
 * are, rather than grpc-js's INTERNAL "Error deserializing request".
 * Unary, server-streaming and bidi methods are wrapped; a bidi stream ends
 * at its first undecodable message.
 */
export function refusingUndecodable(
  definition: ServiceDefinition,
  implementation: UntypedServiceImplementation,
): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
  const wrappedDefinition: Record<string, MethodDefinition<unknown, unknown>> = {};
  const wrapped: UntypedServiceImplementation = { ...implementation };
  for (const [name, method] of Object.entries(definition) as [string, MethodDefinition<unknown, unknown>][]) {
    // grpc-js finds a handler under the method's name or its originalName (lower camel case).
    const key = name in implementation ? name : method.originalName;
    const handler = key === undefined ? undefined : (implementation[key] as AnyHandler | undefined);
    if (key === undefined || handler === undefined || (method.requestStream && !method.responseStream)) {
      wrappedDefinition[name] = method;
      continue;
    }
    wrappedDefinition[name] = {
      ...method,
      requestDeserialize: (bytes: Buffer) => {
        try {
          return method.requestDeserialize(bytes);
        } catch (err) {
          return new MalformedRequest(`request of ${method.path}`, err instanceof Error ? err.message : String(err));
        }
      },
    };
    const refusal = (request: MalformedRequest) => {
      const err = request.error();
      return statusError({ code: GRPC_CODE[err.code], reason: err.reason, message: err.message });
    };
    if (!method.requestStream && !method.responseStream) {
      wrapped[key] = ((call: ServerUnaryCall<unknown, unknown>, callback: sendUnaryData<unknown>) => {
        if (call.request instanceof MalformedRequest) callback(refusal(call.request));
        else handler(call, callback);
      }) as AnyHandler;
    } else if (!method.requestStream) {
      wrapped[key] = ((call: ServerWritableStream<unknown, unknown>) => {
        // A server stream sends an error status when 'error' is emitted on it.
        if (call.request instanceof MalformedRequest) call.emit("error", refusal(call.request));
        else handler(call);
      }) as AnyHandler;
    } else {
      wrapped[key] = ((call: ServerDuplexStream<unknown, unknown>) => {
        // grpc-js pushes each decoded request onto the stream; the handler never sees an undecodable one.
        const push = call.push.bind(call);
        let refused = false;
        call.push = (chunk: unknown) => {
          if (refused) return false;
          if (!(chunk instanceof MalformedRequest)) return push(chunk);
          refused = true;
          call.emit("error", refusal(chunk));
          return false;
        };
        handler(call);
      }) as AnyHandler;
    }
  }
  return { definition: wrappedDefinition, implementation: wrapped };
}
