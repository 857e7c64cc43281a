/**
 * SIGTERM and SIGINT sent to the process a user started (`npm start`, `npx
 * session-registry serve`) stop the daemon gracefully and leave no process
 * behind: npm runs scripts through a shell that would otherwise die of the
 * signal and leave the daemon adopted by PID 1, still listening.
 *
 * Every process of one run carries a marker in its environment, so that
 * "nothing left" is checked over all of them (npm, its shell, node), not
 * only over the PIDs the test happens to know.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import { connect } from "node:net";

import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";
import { eventually } from "../helpers/daemon.js";

const MARKER = "SESSION_REGISTRY_SIGNAL_TEST";

/** PIDs of the processes whose environment holds MARKER=id. */
function processesMarked(id: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/environ`, "latin1").split("\0").includes(`${MARKER}=${id}`)) found.push(Number(entry));
    } catch {
      // Gone meanwhile, or not ours to read.
    }
  }
  return found;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

interface Started {
  child: ChildProcess;
  id: string;
  port: number;
  daemonPid: number;
  stderr(): string;
  exited: Promise<number | null>;
}

async function start(command: string, args: string[]): Promise<Started> {
  const id = randomUUID();
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SESSION_REGISTRY_") && k !== "NODE_OPTIONS"));
  // Its own process group, as a terminal gives a command: Ctrl-C signals the whole group.
  const child = spawn(command, args, {
    cwd: REPO_ROOT,
    env: { ...env, SESSION_REGISTRY_HTTP_LISTEN: "off", [MARKER]: id },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let out = "";
  let err = "";
  child.stdout.setEncoding("utf8").on("data", (chunk: string) => (out += chunk));
  child.stderr.setEncoding("utf8").on("data", (chunk: string) => (err += chunk));
  // 'exit', not 'close': a daemon left behind would hold the pipes open.
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  let ended = false;
  void exited.then(() => (ended = true));
  await eventually(
    () => ended || /listening on 127\.0\.0\.1:\d+/.test(out),
    `${command} ${args.join(" ")} to print its ready line`,
    150_000,
  );
  const port = /listening on 127\.0\.0\.1:(\d+)/.exec(out);
  const pid = /"pid":(\d+)[^\n]*"msg":"daemon started"/.exec(err);
  if (port === null || pid === null) throw new Error(`no ready line or start log.\nstdout:\n${out}\nstderr:\n${err}`);
  return { child, id, port: Number(port[1]), daemonPid: Number(pid[1]), stderr: () => err, exited };
}

const started: Started[] = [];

describe("signals to the process a user started", function () {
  // npx may first run the package's prepare (a full build) on a fresh machine.
  this.timeout(180_000);

  after(() => {
    for (const s of started) for (const pid of processesMarked(s.id)) process.kill(pid, "SIGKILL");
  });

  it("counts the same signal delivered twice at once (the terminal's and npm's copy of a Ctrl-C) as one: a graceful shutdown", async () => {
    const s = await start(process.execPath, ["bin/session-registry.js", "serve", "--listen", "127.0.0.1:0"]);
    started.push(s);
    process.kill(s.daemonPid, "SIGINT");
    process.kill(s.daemonPid, "SIGINT");
    expect(await s.exited).to.equal(0);
    expect(s.stderr()).to.match(/"msg":"shut down"/);
    expect(s.stderr()).to.not.match(/second signal/);
  });

  const npmStart = ["npm", ["start", "--", "--listen", "127.0.0.1:0"]] as const;
  const npx = ["npx", ["session-registry", "serve", "--listen", "127.0.0.1:0"]] as const;
  // "process": what a supervisor does (kill PID); "group": what Ctrl-C in a terminal does.
  const cases = [
    ["npm start", npmStart, "SIGTERM", "process"],
    ["npm start", npmStart, "SIGINT", "process"],
    ["npm start", npmStart, "SIGINT", "group"],
    ["npx session-registry serve", npx, "SIGTERM", "process"],
    ["npx session-registry serve", npx, "SIGINT", "process"],
    ["npx session-registry serve", npx, "SIGINT", "group"],
  ] as const;
  for (const [how, [command, args], signal, target] of cases) {
    {
      it(`${signal} to \`${how}\`'s ${target} shuts the daemon down gracefully and leaves no process behind`, async () => {
        const s = await start(command, [...args]);
        started.push(s);
        expect(await portOpen(s.port), "the daemon listens").to.equal(true);
        expect(processesMarked(s.id)).to.include(s.daemonPid);

        process.kill(target === "group" ? -s.child.pid! : s.child.pid!, signal);
        let exited = false;
        void s.exited.then(() => (exited = true));
        await eventually(() => exited, `\`${how}\` to exit after ${signal}`, 30_000);
        if (how === "npm start") {
          // npm runs the daemon without a shell between them (exec), so it
          // exits only once the daemon has: a supervisor waiting for npm sees the whole shutdown.
          expect(processesMarked(s.id), "processes still running when npm exited").to.deep.equal([]);
        }
        await eventually(
          () => processesMarked(s.id).length === 0,
          `every process of \`${how}\` to be gone (left: ${processesMarked(s.id).join(", ")})`,
        );
        expect(await portOpen(s.port), "nothing listens any more").to.equal(false);
        // Graceful: the daemon ran its shutdown to the end.
        expect(s.stderr()).to.match(/"msg":"shut down"/);
      });
    }
  }
});
