#!/usr/bin/env bash
# Installs the Debian packages the test suite needs, when one is missing
# (run by `npm test` as its pretest step, so the README's test command works
# on a fresh Debian machine): openssl makes the TLS tests' certificates;
# Python's grpcio and protobuf, protoc and its gRPC Python plugin drive the
# reflection test's Python client and the Python SDK, whose tests pytest
# runs (npm run test:python) and flake8 lints (npm run lint:python);
# python3-venv and python3-setuptools let the install test pip-install the
# Python SDK into a venv, offline; etcd-server is the etcd the etcd store's
# tests start (on loopback, with a temporary data dir); util-linux's prlimit
# gives a daemon process a low open-file limit (Essential in Debian, listed
# so that the need is written down); systemd's systemd-analyze verifies the
# unit in deploy/; curl is the plain HTTP client of the HTTP door's tests;
# chromium is the browser the live page's tests drive (through
# playwright-core, at /usr/bin/chromium); golang-go and the sources of
# gRPC, protobuf (APIv2 and the APIv1 shim grpc still imports) and genproto
# (errdetails) build the Go client and its stubs' plugins offline in GOPATH
# mode (scripts/go.sh; npm run test:go). Fast when everything is there.
set -euo pipefail
packages=(openssl python3-grpcio python3-protobuf python3-pytest python3-flake8 python3-venv python3-setuptools protobuf-compiler protobuf-compiler-grpc etcd-server util-linux systemd curl chromium golang-go golang-google-grpc-dev golang-google-protobuf-dev golang-github-golang-protobuf-1-5-dev golang-google-genproto-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "the tests need these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
