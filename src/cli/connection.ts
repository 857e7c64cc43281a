/**
 * The flags every client command shares: where the daemon is, how to reach
 * it (plaintext, TLS, mTLS), who is asking (a bearer token) and how long to
 * wait. Only the address and the token have environment variables: the TLS
 * file flags share their names with the daemon's own --tls-cert/--tls-key,
 * whose variables mean the server's files, so reading them here would send
 * the server's key as a client certificate.
 */
import { readFileSync } from "node:fs";

import { credentials, type SessionRegistryClientOptions } from "@session-registry/client";

import { booleanFlag, parseDuration, stringFlag, UsageError, type OptionSpecs, type ParsedArgs } from "./args.js";
import type { TlsFiles } from "./diagnose.js";

export const DEFAULT_ADDR = "127.0.0.1:50051";
export const ADDR_ENV = "SESSION_REGISTRY_ADDR";
export const TOKEN_ENV = "SESSION_REGISTRY_TOKEN";
const DEFAULT_TIMEOUT_MS = 10_000;

export const CONNECTION_OPTIONS: OptionSpecs = {
  addr: { type: "string", value: "HOST:PORT", help: `Daemon address; env ${ADDR_ENV}, default ${DEFAULT_ADDR}.` },
  token: {
    type: "string",
    value: "TOKEN",
    help: `Sent as "authorization: Bearer TOKEN" (see the daemon's --auth-tokens); env ${TOKEN_ENV}.`,
  },
  tls: { type: "boolean", help: "Connect with TLS, trusting the system's CAs." },
  "tls-ca": { type: "string", value: "FILE", help: "Connect with TLS, trusting the CA certificate(s) in this PEM file." },
  "tls-cert": { type: "string", value: "FILE", help: "Client certificate (PEM) for a daemon that requires mTLS; needs --tls-key." },
  "tls-key": { type: "string", value: "FILE", help: "Private key (PEM) of --tls-cert." },
  "tls-server-name": {
    type: "string",
    value: "NAME",
    help: "The name the daemon's certificate must carry, when it is not the --addr host (e.g. a DNS name while connecting by IP).",
  },
  timeout: { type: "string", value: "DURATION", help: "Deadline of each call, e.g. 5s or 500ms; 0 = none. Default 10s." },
};

export interface Connection {
  addr: string;
  options: SessionRegistryClientOptions;
  /** With TLS: the files of its flags, for diagnoseTls after a failed call; undefined for plaintext. */
  tls?: TlsFiles;
}

/** Reads the connection flags (and their variables); throws UsageError for bad values or unreadable files. */
export function connectionFrom(args: ParsedArgs, env: Readonly<Record<string, string | undefined>>): Connection {
  const addr = stringFlag(args, "addr") ?? nonEmpty(env[ADDR_ENV]) ?? DEFAULT_ADDR;
  if (addr.trim() === "") throw new UsageError("--addr must not be empty");

  const options: SessionRegistryClientOptions = {};
  const timeout = stringFlag(args, "timeout");
  options.timeoutMs = timeout === undefined ? DEFAULT_TIMEOUT_MS : parseDuration(timeout, "--timeout");

  const flagToken = stringFlag(args, "token");
  const token = flagToken ?? nonEmpty(env[TOKEN_ENV]);
  if (token !== undefined) {
    const source = flagToken !== undefined ? "--token" : TOKEN_ENV;
    // Header values are visible ASCII; say so here instead of failing inside grpc-js.
    // The token itself is never echoed.
    if (!/^[\x21-\x7e]+$/.test(token)) {
      throw new UsageError(`${source} must be non-empty printable ASCII without spaces`);
    }
    options.metadata = { authorization: `Bearer ${token}` };
  }

  const ca = stringFlag(args, "tls-ca");
  const cert = stringFlag(args, "tls-cert");
  const key = stringFlag(args, "tls-key");
  if ((cert === undefined) !== (key === undefined)) throw new UsageError("--tls-cert and --tls-key go together");
  const serverName = stringFlag(args, "tls-server-name");
  if (serverName !== undefined) {
    if (serverName === "") throw new UsageError("--tls-server-name must not be empty");
    options.channelOptions = { "grpc.ssl_target_name_override": serverName, "grpc.default_authority": serverName };
  }
  let tls: TlsFiles | undefined;
  if (booleanFlag(args, "tls") || ca !== undefined || cert !== undefined || serverName !== undefined) {
    const caPem = ca === undefined ? null : readPem(ca, "--tls-ca");
    const keyPem = key === undefined ? null : readPem(key, "--tls-key");
    const certPem = cert === undefined ? null : readPem(cert, "--tls-cert");
    try {
      options.credentials = credentials.createSsl(caPem, keyPem, certPem);
    } catch (err) {
      // Node parses the PEM files here: a wrong file is the user's to fix, not an internal error.
      throw new UsageError(`invalid TLS files: ${err instanceof Error ? err.message : String(err)}`);
    }
    tls = {
      ...(caPem !== null ? { ca: caPem } : {}),
      ...(certPem !== null ? { cert: certPem } : {}),
      ...(keyPem !== null ? { key: keyPem } : {}),
      ...(serverName !== undefined ? { serverName } : {}),
    };
  }
  return { addr, options, ...(tls !== undefined ? { tls } : {}) };
}

function readPem(path: string, flag: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read ${flag} ${path}: ${code ?? (err instanceof Error ? err.message : String(err))}`);
  }
}

/** An empty variable counts as unset, as in the daemon. */
function nonEmpty(value: string | undefined): string | undefined {
  return value === "" ? undefined : value;
}
