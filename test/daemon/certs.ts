/**
 * Certificates for the TLS tests, made with `openssl` at test time in a
 * temporary directory (no key is ever committed): a CA, a server
 * certificate for 127.0.0.1 and localhost, a client certificate from the same
 * CA, and a second CA with a client certificate of its own.
 */
import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Pair {
  certPath: string;
  keyPath: string;
  cert: Buffer;
  key: Buffer;
}

export interface TestCerts {
  dir: string;
  ca: Pair;
  server: Pair;
  client: Pair;
  otherCa: Pair;
  /** Signed by otherCa, which the daemon does not trust. */
  otherClient: Pair;
  /** Removes the directory. */
  remove(): Promise<void>;
}

async function openssl(dir: string, args: string[]): Promise<void> {
  try {
    await run("openssl", args, { cwd: dir });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`openssl ${args.join(" ")} failed: ${e.stderr ?? e.message}`);
  }
}

async function load(dir: string, name: string): Promise<Pair> {
  const certPath = join(dir, `${name}.crt`);
  const keyPath = join(dir, `${name}.key`);
  return { certPath, keyPath, cert: await readFile(certPath), key: await readFile(keyPath) };
}

let serial = Date.now();

const EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];

async function makeCa(dir: string, name: string): Promise<Pair> {
  await openssl(dir, ["req", "-x509", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.crt`, "-subj", `/CN=${name}`, "-days", "2"]);
  return load(dir, name);
}

async function makeLeaf(dir: string, name: string, ca: string, extensions: string): Promise<Pair> {
  await writeFile(join(dir, `${name}.ext`), extensions);
  await openssl(dir, ["req", ...EC_KEY, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", `/CN=${name}`]);
  await openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    // A serial of its own: -CAcreateserial would have concurrent signings race on one serial file.
    "-set_serial",
    String(++serial),
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
  return load(dir, name);
}

export async function makeTestCerts(): Promise<TestCerts> {
  const dir = await mkdtemp(join(tmpdir(), "session-registry-tls-"));
  try {
    const [ca, otherCa] = await Promise.all([makeCa(dir, "ca"), makeCa(dir, "other-ca")]);
    const [server, client, otherClient] = await Promise.all([
      makeLeaf(dir, "server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n"),
      makeLeaf(dir, "client", "ca", "extendedKeyUsage=clientAuth\n"),
      makeLeaf(dir, "other-client", "other-ca", "extendedKeyUsage=clientAuth\n"),
    ]);
    return { dir, ca, server, client, otherCa, otherClient, remove: () => rm(dir, { recursive: true, force: true }) };
  } catch (err) {
    await rm(dir, { recursive: true, force: true });
    throw err;
  }
}
