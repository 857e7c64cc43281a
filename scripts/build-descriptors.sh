#!/usr/bin/env bash
# Writes the FileDescriptorSet that the daemon's reflection service serves:
# `buf build` of this workspace (sessionregistry.v1 and the google.rpc and
# google.protobuf files it uses, with comments), followed by grpc.health.v1
# from the vendored third_party/grpc, so that `buf curl` and grpcurl reach
# the health service through reflection too. The reflection protos are left
# out: clients that speak reflection know them already. Both are buf's own
# bytes: protobufjs's rewritten descriptors break clients. Two serialized
# FileDescriptorSets concatenated are one set holding the files of both
# (protobuf merges repeated fields), so the output is a single file.
#
# Usage: scripts/build-descriptors.sh OUTPUT_FILE   (run from anywhere)
set -euo pipefail
out=$(realpath -m "$1")
cd "$(dirname "$0")/.."
buf=node_modules/.bin/buf
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$buf" build --exclude-path third_party/grpc/grpc --as-file-descriptor-set -o "$tmp/registry.binpb"
"$buf" build --path third_party/grpc/grpc/health/v1/health.proto --as-file-descriptor-set -o "$tmp/health.binpb"
mkdir -p "$(dirname "$out")"
cat "$tmp/registry.binpb" "$tmp/health.binpb" >"$out"
