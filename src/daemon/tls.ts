/**
 * The server's transport credentials from --tls-cert, --tls-key and
 * --tls-client-ca. The files are read and checked when the daemon starts,
 * so that a missing file, a key that is not PEM or a key that belongs to
 * another certificate stops start-up with a message naming the flag, rather
 * than failing every handshake later.
 */
import { createPrivateKey, X509Certificate, type KeyObject } from "node:crypto";
import { readFile } from "node:fs/promises";

import { ServerCredentials } from "@grpc/grpc-js";

import { ConfigError, type DaemonConfig } from "./config.js";

/** plaintext, TLS, or TLS with client certificates required. */
export type TransportSecurity = "plaintext" | "tls" | "mtls";

export interface ServerTransport {
  credentials: ServerCredentials;
  security: TransportSecurity;
  /** The files' contents, for the HTTP listener's TLS; undefined in plaintext. */
  pem?: { cert: Buffer; key: Buffer; clientCa: Buffer | undefined };
}

type TlsConfig = Pick<DaemonConfig, "tlsCert" | "tlsKey" | "tlsClientCa">;

/** Throws ConfigError when a file cannot be read or does not hold what its flag needs. */
export async function loadServerTransport(config: TlsConfig): Promise<ServerTransport> {
  if (config.tlsCert === undefined || config.tlsKey === undefined) {
    return { credentials: ServerCredentials.createInsecure(), security: "plaintext" };
  }
  // One after another, so that the first bad flag is the one reported, every time.
  const certChain = await readPem("--tls-cert", config.tlsCert);
  const privateKey = await readPem("--tls-key", config.tlsKey);
  const clientCa = config.tlsClientCa === undefined ? undefined : await readPem("--tls-client-ca", config.tlsClientCa);

  const cert = parse("--tls-cert", config.tlsCert, "a PEM certificate", () => new X509Certificate(certChain));
  const key = parse("--tls-key", config.tlsKey, "a PEM private key", () => createPrivateKey(privateKey));
  if (!matches(cert, key)) {
    throw new ConfigError(`--tls-key ${config.tlsKey} is not the private key of the certificate in --tls-cert ${config.tlsCert}`);
  }
  if (clientCa !== undefined) {
    parse("--tls-client-ca", config.tlsClientCa!, "a PEM CA certificate", () => new X509Certificate(clientCa));
  }

  // With a client CA, checkClientCertificate makes the handshake fail for a
  // client that sends no certificate or one the CA did not sign.
  const credentials = ServerCredentials.createSsl(
    clientCa ?? null,
    [{ cert_chain: certChain, private_key: privateKey }],
    clientCa !== undefined,
  );
  return {
    credentials,
    security: clientCa !== undefined ? "mtls" : "tls",
    pem: { cert: certChain, key: privateKey, clientCa },
  };
}

async function readPem(flag: string, path: string): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    const why =
      code === "ENOENT" ? "no such file" : code === "EACCES" ? "permission denied" : code === "EISDIR" ? "it is a directory" : String(err);
    throw new ConfigError(`cannot read ${flag} ${path}: ${why}`, { cause: err });
  }
}

function parse<T>(flag: string, path: string, what: string, read: () => T): T {
  try {
    return read();
  } catch (err) {
    throw new ConfigError(`${flag} ${path} does not hold ${what} (${err instanceof Error ? err.message : String(err)})`, {
      cause: err,
    });
  }
}

function matches(cert: X509Certificate, key: KeyObject): boolean {
  try {
    return cert.checkPrivateKey(key);
  } catch {
    return false;
  }
}
