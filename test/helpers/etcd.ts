/**
 * A real, single-member etcd for tests: Debian's /usr/bin/etcd on loopback,
 * with free client and peer ports, a temporary data dir and its log in a
 * temporary file (never in the test output). One per test file; each store
 * takes a key prefix of its own (uniquePrefix), so stores stay isolated.
 *
 * Waits are bounded: start-up polls /health until etcd serves, stop waits
 * for the process to exit (then SIGKILL). An exit hook kills any etcd still
 * running when the test process ends, so none outlives the run.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, openSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { get as httpsGet } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ETCD_BIN = process.env.ETCD_BIN ?? "/usr/bin/etcd";
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

/** etcd serving its clients over TLS. */
export interface EtcdTls {
  /** etcd's server certificate and key, as files. */
  certFile: string;
  keyFile: string;
  /** When set, etcd asks clients for a certificate signed by this CA (a file). */
  clientCaFile?: string;
  /** What the helper's own health check trusts and presents. */
  ca: Buffer;
  clientCert?: Buffer;
  clientKey?: Buffer;
}

export interface TestEtcd {
  /** "http://127.0.0.1:PORT" (https with TLS), the client URL. */
  endpoint: string;
  /** The temporary file etcd logs to (kept until stop, for debugging). */
  logFile: string;
  /** The running etcd process's pid (for benchmarks that read its CPU time). */
  pid(): number | undefined;
  /** Stops etcd (SIGTERM, then SIGKILL) and removes its data dir. Idempotent. */
  stop(): Promise<void>;
  /** Kills etcd at once (SIGKILL); its data dir stays, for restart(). */
  kill9(): void;
  /** Starts etcd again on the same ports and data dir (stopping a running one first) and waits until it serves. */
  restart(): Promise<void>;
  /**
   * Stops etcd, deletes its data dir and starts a new, empty one on the same
   * ports: every key gone and revisions started over, as after a lost disk.
   */
  wipe(): Promise<void>;
}

const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const child of running) child.kill("SIGKILL");
  });
}

/** A port free right now on 127.0.0.1 (bind :0, read it, close). */
async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      if (address === null || typeof address === "string") {
        server.close();
        reject(new Error("no port"));
        return;
      }
      server.close(() => resolve(address.port));
    });
  });
}

/** A key prefix no other store of this run (or of another run on the same etcd) uses. */
export function uniquePrefix(): string {
  return `/sr-test-${randomBytes(6).toString("hex")}/`;
}

async function healthy(endpoint: string, tls: EtcdTls | undefined): Promise<boolean> {
  if (tls !== undefined) return healthyOverTls(endpoint, tls);
  try {
    const res = await fetch(`${endpoint}/health`, { signal: AbortSignal.timeout(1000) });
    if (!res.ok) return false;
    const body = (await res.json()) as { health?: unknown };
    return body.health === "true" || body.health === true;
  } catch {
    return false;
  }
}

/** fetch takes no CA or client certificate: the same /health check through node:https. */
function healthyOverTls(endpoint: string, tls: EtcdTls): Promise<boolean> {
  return new Promise((resolve) => {
    const req = httpsGet(`${endpoint}/health`, { ca: tls.ca, cert: tls.clientCert, key: tls.clientKey, timeout: 1000 }, (res) => {
      let body = "";
      res.setEncoding("utf8").on("data", (c: string) => (body += c));
      res.on("end", () => resolve(res.statusCode === 200 && /"health":\s*"?true/.test(body)));
      res.on("error", () => resolve(false));
    });
    req.on("timeout", () => req.destroy());
    req.on("error", () => resolve(false));
  });
}

export async function startEtcd(opts: { tls?: EtcdTls } = {}): Promise<TestEtcd> {
  installExitHook();
  const { tls } = opts;
  const root = await mkdtemp(join(tmpdir(), "sr-etcd-"));
  const dataDir = join(root, "data");
  const logFile = join(root, "etcd.log");
  const [clientPort, peerPort] = [await freePort(), await freePort()];
  const name = `sr-test-${randomBytes(4).toString("hex")}`;
  const endpoint = `${tls !== undefined ? "https" : "http"}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    "--name",
    name,
    "--data-dir",
    dataDir,
    "--listen-client-urls",
    endpoint,
    "--advertise-client-urls",
    endpoint,
    "--listen-peer-urls",
    peer,
    "--initial-advertise-peer-urls",
    peer,
    "--initial-cluster",
    `${name}=${peer}`,
    "--initial-cluster-state",
    "new",
    "--initial-cluster-token",
    name,
    ...(tls === undefined ? [] : ["--cert-file", tls.certFile, "--key-file", tls.keyFile]),
    ...(tls?.clientCaFile === undefined ? [] : ["--client-cert-auth", "--trusted-ca-file", tls.clientCaFile]),
  ];

  let child: ChildProcess | undefined;
  let stopped = false;

  async function launch(): Promise<void> {
    const fd = openSync(logFile, "a");
    let exited = false;
    let proc: ChildProcess;
    try {
      proc = spawn(ETCD_BIN, args, { stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    child = proc;
    running.add(proc);
    proc.once("exit", () => {
      exited = true;
      running.delete(proc);
    });
    const spawnError = new Promise<Error>((resolve) => proc.once("error", resolve));
    let failure: Error | undefined;
    void spawnError.then((err) => (failure = err));
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await healthy(endpoint, tls))) {
      if (failure !== undefined) throw new Error(`could not start ${ETCD_BIN}: ${failure.message}`);
      // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- the exit listener sets it while healthy() is awaited
      if (exited) throw new Error(`etcd exited during start-up; see ${logFile}`);
      if (Date.now() > deadline) {
        proc.kill("SIGKILL");
        throw new Error(`etcd did not serve within ${START_TIMEOUT_MS} ms; see ${logFile}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  }

  async function terminate(): Promise<void> {
    const proc = child;
    child = undefined;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => proc.once("exit", () => resolve()));
    proc.kill("SIGTERM");
    const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  try {
    await launch();
  } catch (err) {
    await terminate();
    await rm(root, { recursive: true, force: true });
    throw err;
  }

  return {
    endpoint,
    logFile,
    pid: () => child?.pid,
    async stop() {
      if (stopped) return;
      stopped = true;
      await terminate();
      await rm(root, { recursive: true, force: true });
    },
    kill9() {
      child?.kill("SIGKILL");
    },
    async restart() {
      if (stopped) throw new Error("etcd was stopped");
      await terminate();
      await launch();
    },
    async wipe() {
      if (stopped) throw new Error("etcd was stopped");
      await terminate();
      await rm(dataDir, { recursive: true, force: true });
      await launch();
    },
  };
}

/**
 * For a describe block: one etcd, started before the block's tests and
 * stopped after them. The getter gives it inside tests and later hooks.
 */
export function suiteEtcd(): () => TestEtcd {
  let etcd: TestEtcd | undefined;
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await etcd?.stop();
  });
  return () => {
    if (etcd === undefined) throw new Error("etcd is not running");
    return etcd;
  };
}
