#!/usr/bin/env bash
# The contract may grow but never break: `buf breaking` (the FILE rules of
# buf.yaml) compares proto/ with the image of the newest release in
# proto/released/. Run from the repository root, or with the root as $1.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "${1:-$root}"
baseline="$(ls proto/released/v*.binpb | sort -V | tail -n 1)"
if ! "$root/node_modules/.bin/buf" breaking proto --against "$baseline"; then
  echo "The contract in proto/ breaks clients of ${baseline#proto/released/} (above). Add to v1 instead of changing it; see docs/development.md, 'Changing the contract'." >&2
  exit 1
fi
