/**
 * gRPC server reflection, v1 and v1alpha (the same protocol under two
 * package names), so that `buf curl`, grpcurl, Postman and the grpcio
 * reflection client can call the daemon without a copy of its .proto files.
 *
 * Reflection serves the FileDescriptorProtos of src/gen/descriptors.binpb,
 * which `npm run generate` writes with `buf build` (see
 * scripts/build-descriptors.sh): sessionregistry.v1 with its comments, the
 * google.rpc and google.protobuf files it uses, and grpc.health.v1. They
 * are served as buf wrote them, byte for byte: descriptors rebuilt by
 * protobufjs (proto-loader's route) lose what clients need.
 *
 * The answers follow grpc-go's and grpc-java's reflection servers: a file
 * comes with its transitive imports (the asked-for file first), a symbol is
 * any declaration's full name (service, method, message, field, oneof,
 * enum, enum value, extension), and what is not there is an error_response
 * NOT_FOUND on the same stream.
 *
 * Start-up only reads the set and splits it into files; the index of names
 * is built at the first reflection call, with @bufbuild/protobuf imported
 * then, so the daemon does not pay for it unless a client asks.
 */
import { readFile } from "node:fs/promises";

import { status, type Server, type ServerDuplexStream, type ServiceDefinition, type UntypedServiceImplementation } from "@grpc/grpc-js";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import type { DescriptorProto, EnumDescriptorProto, FieldDescriptorProto } from "@bufbuild/protobuf/wkt";

import { DESCRIPTOR_SET_URL } from "../assets.js";
import { quote } from "../core/errors.js";
import * as v1 from "../gen/grpc/reflection/v1/reflection.js";
import * as v1alpha from "../gen/grpc/reflection/v1alpha/reflection.js";
import { refusingUndecodable } from "../transport/codecs.js";

/**
 * Splits a serialized google.protobuf.FileDescriptorSet into the serialized
 * FileDescriptorProto of each file (field 1), byte for byte as they are in
 * the set: nothing is decoded and encoded again.
 */
export function splitFileDescriptorSet(set: Uint8Array): Buffer[] {
  const reader = new BinaryReader(set);
  const files: Buffer[] = [];
  while (reader.pos < reader.len) {
    const [fieldNo, wireType] = reader.tag();
    if (fieldNo === 1 && wireType === WireType.LengthDelimited) {
      files.push(Buffer.from(reader.bytes()));
    } else {
      reader.skip(wireType, fieldNo);
    }
  }
  return files;
}

interface IndexedFile {
  bytes: Buffer;
  /** The names of the files it imports, in its own order. */
  imports: readonly string[];
}

/** What reflection answers from: every name declared in the descriptor set, and where. */
export interface ReflectionIndex {
  /** Fully-qualified service names, in the set's order. */
  readonly services: readonly string[];
  readonly files: ReadonlyMap<string, IndexedFile>;
  /** A declaration's full name (no leading dot) -> the name of the file declaring it. */
  readonly symbols: ReadonlyMap<string, string>;
  /** The full names of the message types declared in the set. */
  readonly messages: ReadonlySet<string>;
  /** Extended message's full name -> extension number -> the file declaring the extension. */
  readonly extensions: ReadonlyMap<string, ReadonlyMap<number, string>>;
}

/** Decodes every file of the set and indexes what it declares. */
export async function buildReflectionIndex(files: readonly Buffer[]): Promise<ReflectionIndex> {
  const [{ fromBinary }, { FileDescriptorProtoSchema }] = await Promise.all([
    import("@bufbuild/protobuf"),
    import("@bufbuild/protobuf/wkt"),
  ]);
  const services: string[] = [];
  const indexed = new Map<string, IndexedFile>();
  const symbols = new Map<string, string>();
  const messages = new Set<string>();
  const extensions = new Map<string, Map<number, string>>();

  for (const bytes of files) {
    const file = fromBinary(FileDescriptorProtoSchema, bytes);
    // A name seen twice keeps its first file, as protobuf's own registries do.
    if (indexed.has(file.name)) continue;
    indexed.set(file.name, { bytes, imports: file.dependency });
    const declare = (name: string) => {
      if (!symbols.has(name)) symbols.set(name, file.name);
    };
    const scoped = (scope: string, name: string) => (scope === "" ? name : `${scope}.${name}`);
    const extension = (scope: string, ext: FieldDescriptorProto) => {
      declare(scoped(scope, ext.name));
      const extendee = ext.extendee.replace(/^\./, "");
      let numbers = extensions.get(extendee);
      if (numbers === undefined) extensions.set(extendee, (numbers = new Map<number, string>()));
      if (!numbers.has(ext.number)) numbers.set(ext.number, file.name);
    };
    const enumType = (scope: string, e: EnumDescriptorProto) => {
      declare(scoped(scope, e.name));
      // Enum values are siblings of their enum (C++ scoping): `pkg.VALUE`, not `pkg.Enum.VALUE`.
      for (const value of e.value) declare(scoped(scope, value.name));
    };
    const message = (scope: string, m: DescriptorProto) => {
      const name = scoped(scope, m.name);
      declare(name);
      messages.add(name);
      for (const field of m.field) declare(`${name}.${field.name}`);
      for (const oneof of m.oneofDecl) declare(`${name}.${oneof.name}`);
      for (const nested of m.nestedType) message(name, nested);
      for (const e of m.enumType) enumType(name, e);
      for (const ext of m.extension) extension(name, ext);
    };
    for (const m of file.messageType) message(file.package, m);
    for (const e of file.enumType) enumType(file.package, e);
    for (const ext of file.extension) extension(file.package, ext);
    for (const service of file.service) {
      const name = scoped(file.package, service.name);
      declare(name);
      services.push(name);
      for (const method of service.method) declare(`${name}.${method.name}`);
    }
  }
  return { services, files: indexed, symbols, messages, extensions };
}

/** A reflection answer that is an error_response on the stream, not the end of it. */
class ReflectionError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
  }
}

/** The file and every file it imports, transitively, each once: the asked-for file first, then breadth first. */
function withImports(index: ReflectionIndex, name: string): Buffer[] {
  const out: Buffer[] = [];
  const seen = new Set([name]);
  const queue = [name];
  for (let next = queue.shift(); next !== undefined; next = queue.shift()) {
    const file = index.files.get(next);
    // An import missing from the set is skipped, as grpc-go skips placeholder files.
    if (file === undefined) continue;
    out.push(file.bytes);
    for (const dep of file.imports) {
      if (!seen.has(dep)) {
        seen.add(dep);
        queue.push(dep);
      }
    }
  }
  return out;
}

type Request = v1.ServerReflectionRequest;
type Answer = v1.ServerReflectionResponse["messageResponse"];

const QUESTIONS = "file_by_filename, file_containing_symbol, file_containing_extension, all_extension_numbers_of_type or list_services";

/** The answer to one request (never throws: what cannot be answered is an errorResponse). */
export function answer(index: ReflectionIndex, request: Request): v1.ServerReflectionResponse {
  let messageResponse: Answer;
  try {
    messageResponse = ask(index, request);
  } catch (err) {
    if (!(err instanceof ReflectionError)) throw err;
    messageResponse = { $case: "errorResponse", value: { errorCode: err.code, errorMessage: err.message } };
  }
  return { validHost: request.host, originalRequest: request, messageResponse };
}

function ask(index: ReflectionIndex, { messageRequest: q }: Request): Answer {
  const files = (name: string): Answer => ({ $case: "fileDescriptorResponse", value: { fileDescriptorProto: withImports(index, name) } });
  switch (q?.$case) {
    case "listServices":
      return { $case: "listServicesResponse", value: { service: index.services.map((name) => ({ name })) } };
    case "fileByFilename":
      if (!index.files.has(q.value)) throw new ReflectionError(status.NOT_FOUND, `no file named ${quote(q.value)}`);
      return files(q.value);
    case "fileContainingSymbol": {
      const file = index.symbols.get(q.value);
      if (file === undefined) throw new ReflectionError(status.NOT_FOUND, `no symbol named ${quote(q.value)}`);
      return files(file);
    }
    case "fileContainingExtension": {
      const { containingType, extensionNumber } = q.value;
      const file = index.extensions.get(containingType)?.get(extensionNumber);
      if (file === undefined) throw new ReflectionError(status.NOT_FOUND, `no extension ${extensionNumber} of ${quote(containingType)}`);
      return files(file);
    }
    case "allExtensionNumbersOfType": {
      // A known message with no extensions has none (an empty list); a name that is no message is NOT_FOUND.
      if (!index.messages.has(q.value)) throw new ReflectionError(status.NOT_FOUND, `no message type named ${quote(q.value)}`);
      const numbers = [...(index.extensions.get(q.value)?.keys() ?? [])].sort((a, b) => a - b);
      return { $case: "allExtensionNumbersResponse", value: { baseTypeName: q.value, extensionNumber: numbers } };
    }
    case undefined:
      throw new ReflectionError(status.INVALID_ARGUMENT, `the request asks nothing: set one of ${QUESTIONS}`);
  }
}

type ReflectionCall = ServerDuplexStream<Request, v1.ServerReflectionResponse>;

/** A failure that ends the reflection call with its status: nothing more can be answered on it. */
class CallFailure extends Error {
  constructor(
    readonly code: status,
    readonly details: string,
  ) {
    super(details);
  }
}

/**
 * Reads the descriptor set (by default the generated one) and makes the
 * reflection services (v1 and v1alpha) over it. Their requests that do not
 * decode are answered INVALID_ARGUMENT, not grpc-js's INTERNAL (see
 * refusingUndecodable).
 */
export async function createReflectionService(
  descriptorSet: URL | string = DESCRIPTOR_SET_URL,
): Promise<{ addToServer(server: Pick<Server, "addService">): void }> {
  const files = splitFileDescriptorSet(await readFile(descriptorSet));
  if (files.length === 0) throw new Error(`${String(descriptorSet)} holds no file descriptors; run npm run generate`);
  let index: Promise<ReflectionIndex> | undefined;

  const serverReflectionInfo = (call: ReflectionCall) => {
    // Answers go out in the order of the requests, each after the one before.
    let previous: Promise<unknown> = Promise.resolve();
    let failed = false;
    const reply = async (request: Request) => {
      index ??= buildReflectionIndex(files);
      let built: ReflectionIndex;
      try {
        built = await index;
      } catch (err) {
        const why = err instanceof Error ? err.message : String(err);
        throw new CallFailure(
          status.INTERNAL,
          `reflection cannot read the daemon's descriptor set (${why.slice(0, 200)}); reinstall the daemon`,
        );
      }
      const response = answer(built, request);
      if (call.cancelled || failed) return;
      // A client that does not read its answers stops being read until it does.
      if (!call.write(response)) {
        call.pause();
        call.once("drain", () => call.resume());
      }
    };
    const fail = (err: unknown) => {
      if (failed || call.cancelled) return;
      failed = true;
      // A server stream sends an error status when 'error' is emitted on it.
      const { code, details } = err instanceof CallFailure ? err : { code: status.INTERNAL, details: "reflection failed to answer" };
      call.emit("error", { code, details });
    };
    call.on("data", (request: Request) => {
      previous = previous.then(() => reply(request)).catch(fail);
    });
    call.on("end", () => {
      previous = previous.then(() => {
        if (!failed && !call.cancelled) call.end();
      });
    });
  };

  const services: [ServiceDefinition, UntypedServiceImplementation][] = [
    [v1.ServerReflectionService, { serverReflectionInfo } satisfies v1.ServerReflectionServer],
    [v1alpha.ServerReflectionService, { serverReflectionInfo } satisfies v1alpha.ServerReflectionServer],
  ];
  return {
    addToServer(server) {
      for (const [definition, implementation] of services) {
        const wrapped = refusingUndecodable(definition, implementation);
        server.addService(wrapped.definition, wrapped.implementation);
      }
    },
  };
}
