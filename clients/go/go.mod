// The Go client of session-registry, for users of the public module proxy.
// The repository's own tests build it offline in GOPATH mode over Debian's
// packages instead, which ignores this file (scripts/go.sh, README.md).
module github.com/session-registry/session-registry/clients/go

go 1.19

require (
	google.golang.org/genproto/googleapis/rpc v0.0.0-20240123012728-ef4313101c80
	google.golang.org/grpc v1.62.1
	google.golang.org/protobuf v1.33.0
)
