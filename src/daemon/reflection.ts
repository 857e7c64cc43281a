/**
 * gRPC server reflection (v1 and v1alpha, by @grpc/reflection), so that
 * `buf curl`, grpcurl, Postman and the grpcio reflection client can call the
 * daemon without a copy of its .proto files.
 *
 * Reflection serves the FileDescriptorProtos of src/gen/descriptors.binpb,
 * which `npm run generate` writes with `buf build` (see
 * scripts/build-descriptors.sh): sessionregistry.v1 with its comments, the
 * google.rpc and google.protobuf files it uses, and grpc.health.v1. These
 * are buf's own bytes. The usual route, proto-loader's package definition,
 * hands reflection descriptors that protobufjs rebuilt from its own object
 * model, and clients stumble on what that loses.
 */
import { readFile } from "node:fs/promises";

import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { ReflectionService } from "@grpc/reflection";

import { DESCRIPTOR_SET_URL } from "../assets.js";
import { refusingUndecodable } from "../transport/codecs.js";

/** The service definition that ReflectionService takes (proto-loader's PackageDefinition). */
type PackageDefinition = ConstructorParameters<typeof ReflectionService>[0];

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

/**
 * Reads the descriptor set (by default the generated one) and makes the
 * reflection service over it. Its requests that do not decode are answered
 * INVALID_ARGUMENT, not grpc-js's INTERNAL (see refusingUndecodable).
 */
export async function createReflectionService(
  descriptorSet: URL | string = DESCRIPTOR_SET_URL,
): Promise<Pick<ReflectionService, "addToServer">> {
  const files = splitFileDescriptorSet(await readFile(descriptorSet));
  if (files.length === 0) throw new Error(`${String(descriptorSet)} holds no file descriptors; run npm run generate`);
  // ReflectionService reads only the `fileDescriptorProtos` of the definition's
  // entries and indexes every file, message and service in them; one entry
  // carrying every file is all it needs.
  const definition = { "sessionregistry.descriptors": { fileDescriptorProtos: files } } as unknown as PackageDefinition;
  const service = new ReflectionService(definition);
  return {
    addToServer(server) {
      service.addToServer({
        addService: (def, impl) => {
          const wrapped = refusingUndecodable(def, impl);
          server.addService(wrapped.definition, wrapped.implementation);
        },
      });
    },
  };
}
