/**
 * Why a connection to the daemon failed, found out by trying it again
 * without gRPC: grpc-js reports a TLS mismatch as "Failed to connect" or as
 * an OpenSSL error dump, which tells a user neither what is wrong nor which
 * flag fixes it. Node's TLS socket reports the same failures with stable
 * error codes, so after a failed call the CLI makes one plain TCP or TLS
 * connection to the address, the way the call was made, and names the
 * mismatch in one line. Only on the failure path, and bounded in time.
 */
import { isIP } from "node:net";
import { connect as tlsConnect, type ConnectionOptions, type PeerCertificate, type TLSSocket } from "node:tls";

import { parseListen } from "../args/index.js";

/** How the CLI connects with TLS: the PEM files of its flags (absent: none given). */
export interface TlsFiles {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  /** --tls-server-name */
  serverName?: string;
}

/** The client connection preface and an empty SETTINGS frame: a gRPC server answers with its own SETTINGS. */
const H2_PREFACE = Buffer.concat([Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1"), Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])]);

const DEFAULT_PROBE_MS = 2_000;

/** Certificate checks that fail because no trusted CA signed the daemon's certificate. */
const UNTRUSTED = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_SIGNATURE_FAILURE",
  "CERT_UNTRUSTED",
]);

/**
 * One line naming the TLS mismatch between this CLI and the daemon at
 * `addr` ("it serves TLS, and this call was plaintext; pass --tls-ca ..."),
 * or undefined when the probe finds none (or cannot tell). `tls` undefined
 * means the call was plaintext.
 */
export async function diagnoseTls(addr: string, tls: TlsFiles | undefined, timeoutMs = DEFAULT_PROBE_MS): Promise<string | undefined> {
  const target = parseTarget(addr);
  if (target === undefined) return undefined;
  if (tls === undefined) {
    // Does it speak TLS? Any certificate will do for that question.
    const outcome = await handshake(
      { host: target.host, port: target.port, rejectUnauthorized: false, ...serverName(target.host) },
      timeoutMs,
    );
    if (outcome.kind === "accepted") {
      return "it serves TLS, and this call was plaintext; pass --tls-ca FILE (the CA that signed its certificate), or --tls if a public CA did";
    }
    if (outcome.kind === "refused" && clientCertRefused(outcome.code)) {
      return "it serves TLS and requires a client certificate, and this call was plaintext; pass --tls-ca FILE, --tls-cert FILE and --tls-key FILE";
    }
    return undefined;
  }
  const options: ConnectionOptions = {
    host: target.host,
    port: target.port,
    ...serverName(tls.serverName ?? target.host),
    ...(tls.ca !== undefined ? { ca: tls.ca } : {}),
    ...(tls.cert !== undefined ? { cert: tls.cert } : {}),
    ...(tls.key !== undefined ? { key: tls.key } : {}),
  };
  const outcome = await handshake(options, timeoutMs);
  if (outcome.kind === "closed" && tls.cert !== undefined) {
    return (
      "it closed the connection right after the TLS handshake, as it does for a client certificate it does not trust: " +
      "the CA it trusts (its --tls-client-ca) did not sign the one in --tls-cert"
    );
  }
  if (outcome.kind !== "refused") return undefined;
  const code = outcome.code;
  if (/WRONG_VERSION_NUMBER|PACKET_LENGTH_TOO_LONG|HTTP_REQUEST|UNEXPECTED_EOF|RECORD_LAYER_FAILURE/.test(code)) {
    return "it serves plaintext, not TLS; leave out --tls, --tls-ca, --tls-cert and --tls-key (or start the daemon with --tls-cert and --tls-key)";
  }
  if (UNTRUSTED.has(code)) {
    return tls.ca !== undefined
      ? "its certificate is not signed by the CA in --tls-ca; pass the CA that signed the daemon's --tls-cert"
      : "its certificate is not signed by a CA this system trusts; pass the CA that signed it with --tls-ca FILE";
  }
  if (code === "CERT_HAS_EXPIRED") return "its certificate has expired; the daemon needs a new --tls-cert";
  if (code === "CERT_NOT_YET_VALID") return "its certificate is not valid yet (check the clocks); the daemon needs another --tls-cert";
  if (code === "ERR_TLS_CERT_ALTNAME_INVALID") {
    const name = tls.serverName ?? target.host;
    const names = outcome.cert?.subjectaltname;
    const carries = names === undefined ? "" : ` (it carries ${names.length > 120 ? `${names.slice(0, 117)}...` : names})`;
    return `its certificate is not for ${name}${carries}; connect by a name it carries, or pass --tls-server-name NAME`;
  }
  if (clientCertRefused(code)) {
    return tls.cert === undefined
      ? "it requires a client certificate (mTLS); pass --tls-cert FILE and --tls-key FILE"
      : "it does not accept the client certificate in --tls-cert: a CA it trusts (its --tls-client-ca) did not sign it";
  }
  return undefined;
}

/** The daemon's alerts when it refuses the client's certificate, or the lack of one. */
function clientCertRefused(code: string): boolean {
  return /CERTIFICATE_REQUIRED|ALERT_HANDSHAKE_FAILURE|ALERT_UNKNOWN_CA|ALERT_BAD_CERTIFICATE|ALERT_CERTIFICATE_UNKNOWN|ALERT_DECRYPT_ERROR|ALERT_UNSUPPORTED_CERTIFICATE|ALERT_ACCESS_DENIED/.test(
    code,
  );
}

/** Node warns when a TLS server name is an IP address (RFC 6066 forbids it); the IP is checked as the host instead. */
function serverName(name: string): { servername?: string } {
  return isIP(name) === 0 ? { servername: name } : {};
}

type Outcome =
  /** The handshake passed and the server answered the HTTP/2 preface: no TLS mismatch. */
  | { kind: "accepted" }
  /** The handshake failed, or the server ended it with an alert; `code` is Node's or OpenSSL's. */
  | { kind: "refused"; code: string; cert?: PeerCertificate }
  /**
   * The handshake passed, then the server closed the connection without a
   * word: how Node's TLS server (the daemon's) refuses a client certificate
   * that no CA it trusts signed.
   */
  | { kind: "closed" }
  /** Could not tell: no connection, or a timeout. */
  | { kind: "unknown" };

/**
 * A TLS handshake, then the HTTP/2 preface: with TLS 1.3 the server checks
 * the client's certificate after the client considers the handshake done,
 * so its refusal arrives as an alert on the first read.
 */
function handshake(options: ConnectionOptions, timeoutMs: number): Promise<Outcome> {
  return new Promise((resolve) => {
    let socket: TLSSocket | undefined;
    const done = (outcome: Outcome) => {
      clearTimeout(timer);
      socket?.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => done({ kind: "unknown" }), timeoutMs);
    try {
      socket = tlsConnect({ ...options, ALPNProtocols: ["h2"] });
    } catch {
      done({ kind: "unknown" });
      return;
    }
    const s = socket;
    let secured = false;
    s.on("secureConnect", () => {
      secured = true;
      s.on("data", () => done({ kind: "accepted" }));
      s.write(H2_PREFACE);
    });
    s.on("error", (err: NodeJS.ErrnoException & { cert?: PeerCertificate }) => {
      const code = err.code ?? "";
      // A reset during the handshake: a plaintext server dropping what it could not parse.
      if (code === "ECONNRESET") done(secured ? { kind: "unknown" } : { kind: "refused", code: "UNEXPECTED_EOF" });
      // Nothing listening, or a name that does not resolve: not a TLS question.
      else if (/^E[A-Z]+$/.test(code)) done({ kind: "unknown" });
      else done({ kind: "refused", code, ...(err.cert !== undefined ? { cert: err.cert } : {}) });
    });
    s.on("close", () => done(secured ? { kind: "closed" } : { kind: "unknown" }));
  });
}

/** host and port of a gRPC target: "host:port", "[v6]:port", optionally with a dns: scheme. */
function parseTarget(addr: string): { host: string; port: number } | undefined {
  try {
    const target = parseListen(addr.replace(/^dns:(\/\/[^/]*\/)?/, ""));
    return target.port > 0 ? target : undefined;
  } catch {
    return undefined;
  }
}
