/**
 * `npm run soak [-- --seconds N] [-- --only NAME,...] [-- --out FILE] [-- --node-args "ARGS"]`: the
 * hostile loads at full size, each against a fresh daemon process (the
 * users' command, default flags but the metrics endpoint), for N seconds
 * (default 60; the mixed load runs 3 N). Not part of `npm test`: it runs for
 * minutes and its figures depend on the machine.
 *
 * During each load it samples, once a second: the daemon's resident memory
 * (/proc), its event-loop delay (prom-client's monitorEventLoopDelay, reset
 * at each scrape, so each sample is that second's) and its memory budget's
 * use; and a probe client, on a connection of its own, looks a session up
 * 100 times a second and times each answer. Figures go to the console and to
 * FILE (default bench/soak-results.json); BENCHMARKS.md ("Reliability")
 * quotes them. --node-args go to the daemon's node (e.g. "--trace-gc" to see
 * its collections and their pauses on stderr).
 */
import { connect as netConnect, createServer, type Socket } from "node:net";
import * as http2 from "node:http2";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";

import { credentials, Metadata, status, type ServiceError } from "@grpc/grpc-js";
import { Session, SessionRegistryClient as GeneratedClient } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

import { DEFAULT_CONFIG } from "../src/daemon/config.js";
import { rssOf as rssOrUndefined } from "../test/helpers/daemon-process.js";
import { halfSentCall } from "../test/helpers/h2.js";
import { startDaemonProcess, type ServerProcess } from "./daemon-process.js";
import { percentile, round } from "./stats.js";

const args = process.argv.slice(2);
const arg = (name: string) => {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
};
const SECONDS = Number(arg("seconds") ?? 60);
const ONLY = arg("only")?.split(",");
const NODE_ARGS =
  arg("node-args")
    ?.split(" ")
    .filter((a) => a !== "") ?? [];
const OUT = resolve(arg("out") ?? fileURLToPath(new URL("soak-results.json", import.meta.url)));
const MIB = 1024 * 1024;
const TOKEN = "soak-admin-token-0123456789abcdef";
/** The daemon's default --max-receive-message-size: the attack announces messages just under it. */
const MAX_REQUEST = DEFAULT_CONFIG.maxReceiveMessageBytes;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const session = (fields: Partial<Session>): Session => ({ ...Session.fromPartial({}), ...fields });
/** The most metadata a session may carry: 16384 bytes of keys and values, different for each n. */
const biggest = (n: number) => new Map(Array.from({ length: 4 }, (_, i) => [`k${i}`, `${n}:${i}:`.padEnd(4094, "x")]));

interface Sample {
  rss: number;
  lagMaxMs: number;
  lagP99Ms: number;
  budgetUsed: number;
}

interface PhaseResult {
  name: string;
  what: string;
  seconds: number;
  rssStartMiB: number;
  rssPeakMiB: number;
  rssEndMiB: number;
  budgetPeakMiB: number;
  lagMaxMs: number;
  lagP99MaxMs: number;
  probe: { answered: number; failed: number; p50Ms: number; p99Ms: number; maxMs: number };
  attack: Record<string, number | string>;
  daemonUp: boolean;
}

/**
 * A client on a connection of its own: grpc-js shares connections between
 * clients of one address, and watchers that stop reading would then stall
 * the probe's calls behind their flow-control window.
 */
function client(address: string): GeneratedClient {
  return new GeneratedClient(address, credentials.createInsecure(), { "grpc.use_local_subchannel_pool": 1 });
}

/** The daemon's resident memory; 0 once it is gone. */
const rssOf = (pid: number): number => rssOrUndefined(pid) ?? 0;

/** A port nothing listens on now, for the metrics endpoint. */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as { port: number }).port;
  await new Promise((r) => server.close(r));
  return port;
}

/** What the memory budget gave back so far: history events dropped, watchers ended. */
async function reclaimed(metricsPort: number): Promise<Record<string, number>> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const count = (kind: string) =>
    Number(new RegExp(`^session_registry_memory_reclaimed_total\\{kind="${kind}"\\} (\\S+)$`, "m").exec(text)?.[1] ?? 0);
  return { historyEventsDropped: count("history"), watchersEndedByBudget: count("queues") };
}

async function scrape(metricsPort: number): Promise<Omit<Sample, "rss">> {
  const text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  const used = [...text.matchAll(/^session_registry_memory_used_bytes\{kind="\w+"\} (\S+)$/gm)].reduce((n, m) => n + Number(m[1]), 0);
  return {
    lagMaxMs: value(/^nodejs_eventloop_lag_max_seconds (\S+)$/m) * 1000,
    lagP99Ms: value(/^nodejs_eventloop_lag_p99_seconds (\S+)$/m) * 1000,
    budgetUsed: used,
  };
}

/** A well-behaved client: 100 Lookups a second on its own connection, each timed. */
class Probe {
  readonly latencies: number[] = [];
  failed = 0;
  private running = true;
  private readonly done: Promise<void>;
  private readonly raw: { client: GeneratedClient; close(): void };

  constructor(address: string, metadata: Metadata) {
    const c = client(address);
    this.raw = { client: c, close: () => c.close() };
    this.done = (async () => {
      let next = performance.now();
      while (this.running) {
        const t0 = performance.now();
        try {
          await new Promise<void>((res, rej) =>
            this.raw.client.lookup({ table: "", key: { $case: "id", value: "probe" } }, metadata, { deadline: Date.now() + 5000 }, (err) =>
              err ? rej(err) : res(),
            ),
          );
          this.latencies.push(performance.now() - t0);
        } catch {
          this.failed++;
        }
        next += 10;
        const wait = next - performance.now();
        if (wait > 0) await sleep(wait);
        else next = performance.now();
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.done;
    this.raw.close();
  }
}

interface Attack {
  /** Stops the load and releases what it holds; returns its own figures. */
  stop(): Promise<Record<string, number | string>>;
}

interface Phase {
  name: string;
  what: string;
  flags?: string[];
  seconds?: number;
  start(address: string, metadata: Metadata): Promise<Attack>;
}

/** Runs `workers` loops of `op` until stopped, counting outcomes by status code; each loop at most one op per `paceMs`. */
function loops(workers: number, op: (worker: number, i: number) => Promise<unknown>, paceMs = 0): Attack {
  let running = true;
  const codes: Record<string, number> = {};
  const all = Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; running; i++) {
        const started = performance.now();
        try {
          await op(w, i);
          codes.OK = (codes.OK ?? 0) + 1;
        } catch (err) {
          // A code grpc-js has no name for, or none at all, counts as ERROR.
          const code = status[(err as ServiceError).code as number] ?? "ERROR";
          codes[code] = (codes[code] ?? 0) + 1;
          if (code === "UNAVAILABLE") await sleep(50);
        }
        const wait = paceMs - (performance.now() - started);
        if (wait > 0) await sleep(wait);
      }
    }),
  );
  return {
    async stop() {
      running = false;
      await all;
      return codes;
    },
  };
}

function unary(client: GeneratedClient, method: string, req: unknown, metadata: Metadata): Promise<unknown> {
  return new Promise((res, rej) =>
    (client as unknown as Record<string, (r: unknown, m: Metadata, o: object, cb: (e: Error | null, v: unknown) => void) => void>)[
      method
    ]!.call(client, req, metadata, { deadline: Date.now() + 10_000 }, (e: Error | null, v: unknown) => (e ? rej(e) : res(v))),
  );
}

const PHASES: Phase[] = [
  {
    name: "idle",
    what: "no load: the probe alone",
    start() {
      return Promise.resolve({ stop: () => Promise.resolve({}) });
    },
  },
  {
    name: "history-flood",
    what: "6 writers updating one session with the most metadata allowed (16 KiB) in each of 2 tables, as fast as they can",
    async start(address, metadata) {
      const clients = Array.from({ length: 6 }, () => client(address));
      for (const t of ["flood0", "flood1"]) {
        await unary(clients[0]!, "createTable", { table: t, maxSessions: 10 }, metadata);
        await unary(
          clients[0]!,
          "register",
          { requestId: "", table: t, session: session({ id: "big", projectPath: "/big", metadata: biggest(0) }) },
          metadata,
        );
      }
      const attack = loops(6, (w, i) =>
        unary(
          clients[w]!,
          "update",
          {
            requestId: "",
            table: `flood${w % 2}`,
            session: session({ id: "big", metadata: biggest(w * 1e9 + i) }),
            updateMask: ["metadata"],
            expectedRevision: 0,
            tableUid: "",
          },
          metadata,
        ),
      );
      return {
        async stop() {
          const codes = await attack.stop();
          for (const c of clients) c.close();
          return codes;
        },
      };
    },
  },
  {
    name: "slow-watchers",
    what: "1,000 watchers that never read (10 connections), while a writer updates a session with 16 KiB of metadata in a loop",
    async start(address, metadata) {
      const admin = client(address);
      await unary(admin, "createTable", { table: "fan", maxSessions: 10 }, metadata);
      await unary(
        admin,
        "register",
        { requestId: "", table: "fan", session: session({ id: "big", projectPath: "/big", metadata: biggest(0) }) },
        metadata,
      );
      const readers = Array.from({ length: 10 }, () => client(address));
      const calls = Array.from({ length: 1000 }, (_, i) => {
        const call = readers[i % 10]!.watch({ table: "fan", startRevision: 0, tableUid: "" }, metadata);
        call.once("data", () => call.pause());
        call.on("error", () => {});
        return call;
      });
      const attack = loops(1, (_w, i) =>
        unary(
          admin,
          "update",
          {
            requestId: "",
            table: "fan",
            session: session({ id: "big", metadata: biggest(i) }),
            updateMask: ["metadata"],
            expectedRevision: 0,
            tableUid: "",
          },
          metadata,
        ),
      );
      return {
        async stop() {
          const codes = await attack.stop();
          for (const c of calls) c.cancel();
          for (const r of readers) r.close();
          admin.close();
          return codes;
        },
      };
    },
  },
  ...(["without", "with"] as const).map((tokens): Phase => ({
    name: `unfinished-messages-${tokens}-token`,
    what: `20 connections x 100 streams, each announcing a message just under --max-receive-message-size (64 KiB - 1 byte), sending 63 KiB of it and never finishing${tokens === "with" ? "; the daemon has --auth-tokens and the streams carry no token" : ""}`,
    ...(tokens === "with" ? { flags: ["--auth-tokens", tokenFile()] } : {}),
    start(address) {
      const sessions = Array.from({ length: 20 }, () => http2.connect(`http://${address}`));
      const counts = { streamsOpened: 0, streamsClosedByDaemon: 0 };
      for (const s of sessions) {
        s.on("error", () => {});
        for (let i = 0; i < 100; i++) {
          const stream = halfSentCall(s, "/sessionregistry.v1.SessionRegistry/Register", MAX_REQUEST - 1, MAX_REQUEST - 1024);
          counts.streamsOpened++;
          stream.on("error", () => {});
          stream.on("close", () => counts.streamsClosedByDaemon++);
        }
      }
      return Promise.resolve({
        stop() {
          for (const s of sessions) s.destroy();
          return Promise.resolve(counts);
        },
      });
    },
  })),
  {
    name: "error-echo",
    what: "4 clients looping an Update whose update_mask holds 3,000 invalid paths (59 KB, just under the request size limit), and one of 40,000 (880 KB, over it)",
    start(address, metadata) {
      const clients = Array.from({ length: 4 }, () => client(address));
      const mask = Array.from({ length: 3_000 }, (_, i) => `no_such_field_${i}`);
      const huge = Array.from({ length: 40_000 }, (_, i) => `no_such_field_${i}`);
      let trailerBytes = 0;
      const attack = loops(4, async (w, i) => {
        try {
          const updateMask = i % 10 === 9 ? huge : mask;
          await unary(
            clients[w]!,
            "update",
            { requestId: "", table: "", session: session({ id: "x" }), updateMask, expectedRevision: 0, tableUid: "" },
            metadata,
          );
        } catch (err) {
          const md = (err as Partial<ServiceError>).metadata?.getMap() ?? {};
          trailerBytes = Math.max(
            trailerBytes,
            (err as ServiceError).details.length + Object.values(md).reduce<number>((n, v) => n + String(v).length, 0),
          );
          throw err;
        }
      });
      return Promise.resolve({
        async stop() {
          const codes = await attack.stop();
          for (const c of clients) c.close();
          return { ...codes, largestErrorBytes: trailerBytes };
        },
      });
    },
  },
  {
    name: "silent-connections",
    what: "1,100 TCP connections that send nothing, and 50 that trickle the HTTP/2 preface one byte every 5 s",
    start(address) {
      const [host, port] = [address.slice(0, address.lastIndexOf(":")), Number(address.slice(address.lastIndexOf(":") + 1))];
      const sockets: Socket[] = [];
      const counts = { opened: 0, closedByDaemon: 0, refused: 0 };
      const open = () => {
        const s = netConnect({ host, port });
        // Read (and drop) what the daemon sends (its HTTP/2 SETTINGS): a socket not read never sees its end.
        s.resume();
        s.on("error", () => counts.refused++);
        s.on("close", () => counts.closedByDaemon++);
        s.on("connect", () => counts.opened++);
        sockets.push(s);
        return s;
      };
      for (let i = 0; i < 1100; i++) open();
      const preface = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
      const tricklers = Array.from({ length: 50 }, () => open());
      let at = 0;
      const timer = setInterval(() => {
        for (const t of tricklers) if (!t.destroyed && at < preface.length) t.write(preface.subarray(at, at + 1));
        at++;
      }, 5000);
      return Promise.resolve({
        stop() {
          clearInterval(timer);
          const closed = counts.closedByDaemon;
          for (const s of sockets) s.destroy();
          return Promise.resolve({ ...counts, closedByDaemon: closed });
        },
      });
    },
  },
  {
    name: "mixed",
    what: "~640 calls/s for 3x the phase time: Lookup 50%, Register+Remove 20%, Update 15%, List 10%, KeepAlive 5%, with 20 live watchers",
    seconds: SECONDS * 3,
    flags: ["--max-sessions", "100000"],
    async start(address, metadata) {
      const clients = Array.from({ length: 8 }, () => client(address));
      const watchers = Array.from({ length: 20 }, (_, i) => {
        const call = clients[i % 8]!.watch({ table: "", startRevision: 0, tableUid: "" }, metadata);
        call.on("data", () => {});
        call.on("error", () => {});
        return call;
      });
      const ids: string[] = [];
      for (let i = 0; i < 500; i++) {
        const res = (await unary(
          clients[0]!,
          "register",
          {
            requestId: "",
            table: "",
            session: session({ projectPath: `/seed/${i}`, metadata: new Map([["k", "v".repeat(200)]]), ttl: { seconds: 60, nanos: 0 } }),
          },
          metadata,
        )) as { session: Session };
        ids.push(res.session.id);
      }
      let n = 0;
      // 8 loops at 80 calls/s each: ~640 calls/s (a Register+Remove counts as one).
      const attack = loops(
        8,
        async (w) => {
          const i = n++;
          const c = clients[w]!;
          const r = i % 20;
          const id = ids[i % ids.length]!;
          if (r < 10) await unary(c, "lookup", { table: "", key: { $case: "id", value: id } }, metadata);
          else if (r < 12) {
            const res = (await unary(
              c,
              "register",
              { requestId: "", table: "", session: session({ projectPath: `/mixed/${i}` }) },
              metadata,
            )) as { session: Session };
            await unary(
              c,
              "remove",
              { requestId: "", table: "", id: res.session.id, expectedRevision: 0, allowMissing: false, tableUid: "" },
              metadata,
            );
          } else if (r < 15)
            await unary(
              c,
              "update",
              {
                requestId: "",
                table: "",
                session: session({
                  id,
                  metadata: new Map([
                    ["n", String(i)],
                    ["k", "v".repeat(200)],
                  ]),
                }),
                updateMask: ["metadata"],
                expectedRevision: 0,
                tableUid: "",
              },
              metadata,
            );
          else if (r < 17) await unary(c, "list", { table: "", pageSize: 100, pageToken: "" }, metadata);
          else if (r < 19) await unary(c, "lookup", { table: "", key: { $case: "projectPath", value: `/seed/${i % 500}` } }, metadata);
          // Every seed session in turn, so that each is kept alive every ~16 s (its ttl is 60 s).
          else await unary(c, "keepAlive", { table: "", id: ids[Math.floor(i / 20) % ids.length]! }, metadata);
        },
        12.5,
      );
      return {
        async stop() {
          const codes = await attack.stop();
          for (const w of watchers) w.cancel();
          for (const c of clients) c.close();
          return codes;
        },
      };
    },
  },
];

function tokenFile(): string {
  const dir = mkdtempSync(join(tmpdir(), "soak-"));
  const file = join(dir, "tokens");
  writeFileSync(file, `admin ${TOKEN}\n`);
  return file;
}

async function runPhase(phase: Phase): Promise<PhaseResult> {
  const metricsPort = await freePort();
  const daemon: ServerProcess = await startDaemonProcess(
    ["--metrics-listen", `127.0.0.1:${metricsPort}`, ...(phase.flags ?? [])],
    NODE_ARGS,
  );
  // What node itself prints (--trace-gc) goes to stdout, after the listening line.
  if (NODE_ARGS.length > 0) daemon.child.stdout!.pipe(process.stderr);
  const metadata = new Metadata();
  if (phase.flags?.includes("--auth-tokens")) metadata.set("authorization", `Bearer ${TOKEN}`);
  const pid = daemon.child.pid!;
  const setup = client(daemon.address);
  await unary(setup, "register", { requestId: "", table: "", session: session({ id: "probe", projectPath: "/probe" }) }, metadata);
  setup.close();
  await sleep(1000);
  const rssStart = rssOf(pid);
  const samples: Sample[] = [];
  const probe = new Probe(daemon.address, metadata);
  const attack = await phase.start(daemon.address, metadata);
  const seconds = phase.seconds ?? SECONDS;
  for (let s = 0; s < seconds; s++) {
    await sleep(1000);
    try {
      samples.push({ rss: rssOf(pid), ...(await scrape(metricsPort)) });
    } catch {
      samples.push({ rss: rssOf(pid), lagMaxMs: NaN, lagP99Ms: NaN, budgetUsed: NaN });
    }
  }
  const attackFigures = { ...(await attack.stop()), ...(await reclaimed(metricsPort).catch(() => ({}))) };
  await probe.stop();
  const daemonUp = daemon.child.exitCode === null && daemon.child.signalCode === null;
  const rssEnd = rssOf(pid);
  await daemon.stop();
  const max = (xs: number[]) => xs.filter((x) => !Number.isNaN(x)).reduce((a, b) => Math.max(a, b), 0);
  return {
    name: phase.name,
    what: phase.what,
    seconds,
    rssStartMiB: round(rssStart / MIB, 0),
    rssPeakMiB: round(max(samples.map((s) => s.rss)) / MIB, 0),
    rssEndMiB: round(rssEnd / MIB, 0),
    budgetPeakMiB: round(max(samples.map((s) => s.budgetUsed)) / MIB, 1),
    lagMaxMs: round(max(samples.map((s) => s.lagMaxMs)), 1),
    lagP99MaxMs: round(max(samples.map((s) => s.lagP99Ms)), 1),
    probe: {
      answered: probe.latencies.length,
      failed: probe.failed,
      p50Ms: round(percentile(probe.latencies, 50), 2),
      p99Ms: round(percentile(probe.latencies, 99), 2),
      maxMs: round(max(probe.latencies), 1),
    },
    attack: attackFigures,
    daemonUp,
  };
}

const results: PhaseResult[] = [];
for (const phase of PHASES) {
  if (ONLY !== undefined && !ONLY.includes(phase.name)) continue;
  console.error(`soak: ${phase.name} (${phase.seconds ?? SECONDS} s): ${phase.what}`);
  const r = await runPhase(phase);
  results.push(r);
  console.error(
    `  RSS ${r.rssStartMiB} -> peak ${r.rssPeakMiB} -> ${r.rssEndMiB} MiB; budget peak ${r.budgetPeakMiB} MiB; ` +
      `event-loop delay max ${r.lagMaxMs} ms (p99 per second, worst ${r.lagP99MaxMs} ms); ` +
      `probe ${r.probe.answered} answered, ${r.probe.failed} failed, p50 ${r.probe.p50Ms} ms, p99 ${r.probe.p99Ms} ms; ` +
      `attack ${JSON.stringify(r.attack)}; daemon ${r.daemonUp ? "up" : "DOWN"}`,
  );
}
writeFileSync(
  OUT,
  JSON.stringify({ when: new Date().toISOString(), secondsPerPhase: SECONDS, node: process.version, results }, null, 2) + "\n",
);
console.error(`soak: figures in ${OUT}`);
