#!/usr/bin/env bash
# Fails when the committed generated code (every gen/ folder) differs from what
# `npm run generate` makes now (buf generate, then the reflection descriptors).
# Works without git: it generates into a temp dir and diffs. The Go plugins
# are built first when missing (scripts/go.sh plugins), so a fresh clone
# needs only Debian's Go packages (scripts/test-deps.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PATH="$PWD/node_modules/.bin:$PATH" buf generate -o "$tmp"
PATH="$PWD/node_modules/.bin:$PATH" buf generate --template buf.gen.python.yaml -o "$tmp"
bash scripts/go.sh plugins
PATH="$PWD/node_modules/.bin:$PATH" buf generate --template buf.gen.go.yaml -o "$tmp"
# The descriptor set that reflection serves (see build-descriptors.sh); diff -r compares it byte for byte.
bash scripts/build-descriptors.sh "$tmp/src/gen/descriptors.binpb"
status=0
for dir in src/gen clients/typescript/src/gen clients/python/session_registry/gen clients/go/gen; do
  # -x __pycache__: importing the Python stubs (the SDK, its tests) may write
  # bytecode caches next to them; those are not generated code.
  if ! diff -r -x __pycache__ "$tmp/$dir" "$dir" >/dev/null 2>&1; then
    echo "generated code in $dir is stale: run 'npm run generate' and commit the result" >&2
    diff -r -x __pycache__ "$tmp/$dir" "$dir" | head -20 >&2 || true
    status=1
  fi
done
[ $status -eq 0 ] && echo "generated code is up to date"
exit $status
