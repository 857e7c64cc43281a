#!/usr/bin/env bash
# Fails when the committed generated code (every gen/ folder) differs from what
# `buf generate` makes now. Works without git: it generates into a temp dir and diffs.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
PATH="$PWD/node_modules/.bin:$PATH" buf generate -o "$tmp"
status=0
for dir in src/gen clients/typescript/src/gen; do
  if ! diff -r "$tmp/$dir" "$dir" >/dev/null 2>&1; then
    echo "generated code in $dir is stale: run 'npm run generate' and commit the result" >&2
    diff -r "$tmp/$dir" "$dir" | head -20 >&2 || true
    status=1
  fi
done
[ $status -eq 0 ] && echo "generated code is up to date"
exit $status
