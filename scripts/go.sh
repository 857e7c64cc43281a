#!/usr/bin/env bash
# The Go toolchain of clients/go, offline: Debian's golang-go and the gRPC and
# protobuf sources Debian installs under /usr/share/gocode, in GOPATH mode
# (module mode would want the module proxy). A GOPATH of ours in .tmp/go
# (gitignored) links clients/go at its module path, so the package builds
# under the import path its users write. Nothing is downloaded.
#
# Usage (from anywhere):
#   scripts/go.sh plugins        builds protoc-gen-go and protoc-gen-go-grpc
#                                into .tmp/go/bin when missing (buf.gen.go.yaml
#                                runs them from there)
#   scripts/go.sh test [FLAGS]   gofmt, go vet and go test of clients/go; the
#                                tests start their own daemons (npm run test:go)
#   scripts/go.sh go ARGS...     any go command in that environment
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
work="$root/.tmp/go"
module=github.com/session-registry/session-registry/clients/go
packages=("$module/sessionregistry" "$module/gen/sessionregistry/v1")

export GO111MODULE=off GOPROXY=off GOFLAGS=
export GOPATH="$work/gopath:/usr/share/gocode"
export GOCACHE="${GOCACHE:-$work/cache}"

if ! command -v go >/dev/null; then
  echo "go is missing: install Debian's golang-go (scripts/test-deps.sh lists every package)" >&2
  exit 1
fi

# The module path inside our GOPATH, linked to the working tree.
link="$work/gopath/src/$module"
if [ "$(readlink "$link" 2>/dev/null)" != "$root/clients/go" ]; then
  mkdir -p "$(dirname "$link")"
  ln -sfn "$root/clients/go" "$link"
fi

plugins() {
  mkdir -p "$work/bin"
  # Not Debian's /usr/bin/protoc-gen-go (golang-goprotobuf-dev): that is the
  # old APIv1 generator, whose messages fail at run time against this grpc.
  [ -x "$work/bin/protoc-gen-go" ] || go build -o "$work/bin/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
  [ -x "$work/bin/protoc-gen-go-grpc" ] || go build -o "$work/bin/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
}

case "${1:-}" in
  plugins)
    plugins
    ;;
  test)
    shift
    cd "$root/clients/go"
    unformatted="$(gofmt -l . | grep -v '^gen/' || true)"
    if [ -n "$unformatted" ]; then
      echo "not gofmt-formatted (run: gofmt -w clients/go/$unformatted):" >&2
      echo "$unformatted" >&2
      exit 1
    fi
    go vet "${packages[@]}"
    # -count=1: the tests talk to daemons they start, so a cached pass proves nothing.
    go test -count=1 "$@" "${packages[@]}"
    ;;
  go)
    shift
    exec go "$@"
    ;;
  *)
    echo "usage: scripts/go.sh plugins | test [go test flags] | go ARGS..." >&2
    exit 2
    ;;
esac
