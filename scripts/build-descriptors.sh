#!/usr/bin/env bash
# Writes the FileDescriptorSet that the daemon's reflection service serves:
# `buf build` of this workspace (sessionregistry.v1 and the google.rpc and
# google.protobuf files it uses, with comments), followed by grpc.health.v1
# from the grpc-health-check package, so that `buf curl` and grpcurl reach
# the health service through reflection too. Both are buf's own bytes:
# protobufjs's rewritten descriptors break clients. Two serialized
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
"$buf" build --as-file-descriptor-set -o "$tmp/registry.binpb"
# The health proto ships at health/v1/health.proto; clients know it as grpc/health/v1/health.proto.
mkdir -p "$tmp/health/grpc/health/v1"
cp node_modules/grpc-health-check/proto/health/v1/health.proto "$tmp/health/grpc/health/v1/health.proto"
"$buf" build "$tmp/health" --as-file-descriptor-set -o "$tmp/health.binpb"
mkdir -p "$(dirname "$out")"
cat "$tmp/registry.binpb" "$tmp/health.binpb" >"$out"
