"""A grpcio client that knows the daemon only through server reflection.

Run by reflection.test.ts with Debian's python3-grpcio and python3-protobuf:

    /usr/bin/python3 reflection_client.py STUBS_DIR ADDRESS VERSION...

STUBS_DIR holds reflection_VERSION_pb2(_grpc).py, made by protoc from
grpc/reflection/VERSION/reflection.proto; VERSION is v1 or v1alpha.

For each version, it lists the services, fetches the file that declares
sessionregistry.v1.SessionRegistry (and, by name, any import the answer left
out), adds the files to a fresh descriptor pool in import order, resolves
every message and enum that the service's methods use, down to the last
field, builds message classes from them, and calls GetTable with those
classes. It prints one JSON object on stdout, with a member per version;
any failure is an exception, so a non-zero exit.
"""

import base64
import importlib
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory

SERVICE = "sessionregistry.v1.SessionRegistry"


def message_class(pool, descriptor):
    # GetMessageClass is protobuf >= 4.22; Debian bookworm has 4.21.
    if hasattr(message_factory, "GetMessageClass"):
        return message_factory.GetMessageClass(descriptor)
    return message_factory.MessageFactory(pool).GetPrototype(descriptor)


def explore(address, version):
    pb2 = importlib.import_module(f"reflection_{version}_pb2")
    pb2_grpc = importlib.import_module(f"reflection_{version}_pb2_grpc")

    with grpc.insecure_channel(address) as channel:
        stub = pb2_grpc.ServerReflectionStub(channel)

        def ask(**request):
            answers = list(stub.ServerReflectionInfo(iter([pb2.ServerReflectionRequest(**request)]), timeout=10))
            if len(answers) != 1:
                raise RuntimeError(f"expected one answer to {request}, got {len(answers)}")
            answer = answers[0]
            if answer.HasField("error_response"):
                raise RuntimeError(f"reflection error for {request}: {answer.error_response}")
            return answer

        services = [s.name for s in ask(list_services="*").list_services_response.service]

        # name -> serialized FileDescriptorProto, as the server sent it
        files = {}

        def take(answer):
            for raw in answer.file_descriptor_response.file_descriptor_proto:
                files.setdefault(descriptor_pb2.FileDescriptorProto.FromString(raw).name, raw)

        first = ask(file_containing_symbol=SERVICE)
        take(first)
        main_file = descriptor_pb2.FileDescriptorProto.FromString(
            first.file_descriptor_response.file_descriptor_proto[0]
        ).name

        pool = descriptor_pool.DescriptorPool()
        added = set()
        fetched_by_name = []

        def add(name):
            if name in added:
                return
            if name not in files:
                fetched_by_name.append(name)
                take(ask(file_by_filename=name))
            proto = descriptor_pb2.FileDescriptorProto.FromString(files[name])
            for dependency in proto.dependency:
                add(dependency)
            pool.AddSerializedFile(files[name])
            added.add(name)

        add(main_file)

        service = pool.FindServiceByName(SERVICE)
        messages = {}
        enums = set()

        def resolve(descriptor):
            if descriptor.full_name in messages:
                return
            messages[descriptor.full_name] = message_class(pool, descriptor)
            messages[descriptor.full_name]()  # a class that cannot be instantiated is not resolved
            for field in descriptor.fields:
                if field.message_type is not None:
                    resolve(field.message_type)
                if field.enum_type is not None:
                    enums.add(field.enum_type.full_name)

        methods = []
        for method in service.methods:
            resolve(method.input_type)
            resolve(method.output_type)
            methods.append(
                {
                    "name": method.name,
                    "input": method.input_type.full_name,
                    "output": method.output_type.full_name,
                    "serverStreaming": method.server_streaming,
                }
            )

        request_class = messages["sessionregistry.v1.GetTableRequest"]
        response_class = messages["sessionregistry.v1.GetTableResponse"]
        get_table = channel.unary_unary(
            f"/{SERVICE}/GetTable",
            request_serializer=lambda m: m.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        response = get_table(request_class(table="default"), timeout=10)

    return {
        "services": services,
        "mainFile": main_file,
        "fetchedByName": fetched_by_name,
        "methods": methods,
        "messages": sorted(messages),
        "enums": sorted(enums),
        "getTable": json_format.MessageToDict(response),
        "files": {name: base64.b64encode(raw).decode("ascii") for name, raw in files.items()},
    }

def main():
    stubs_dir, address, *versions = sys.argv[1:]
    sys.path.insert(0, stubs_dir)
    json.dump({version: explore(address, version) for version in versions}, sys.stdout)


if __name__ == "__main__":
    main()
