/**
 * What the real CLI says on stderr while it waits: `watch` when its stream
 * breaks and when it resumes (daemons on etcd, so the history outlives a
 * daemon), and a write the SDK retries, once per attempt.
 */
import { expect } from "chai";

import { eventually } from "../helpers/daemon.js";
import { killDaemons, spawnDaemon, waitForPort, type DaemonProcess } from "../helpers/daemon-process.js";
import { suiteEtcd, uniquePrefix } from "../helpers/etcd.js";
import { killLeftoverClis, runCli, startCli, summary } from "./cli-process.js";

describe("CLI: notes while it waits", function () {
  this.timeout(120_000);

  after(() => {
    killLeftoverClis();
    killDaemons();
  });
  // Its hooks come after the one above, so that etcd stops once the daemons are gone.
  const etcd = suiteEtcd();

  function daemon(listen: string, prefix: string): DaemonProcess {
    return spawnDaemon([
      "--listen",
      listen,
      "--store",
      "etcd",
      "--etcd-endpoints",
      etcd().endpoint,
      "--etcd-prefix",
      prefix,
      "--log-level",
      "warn",
    ]);
  }

  it("watch says 'reconnecting...' when its daemon goes, and 'resumed at revision N' when one is back", async () => {
    const prefix = uniquePrefix();
    const first = daemon("127.0.0.1:0", prefix);
    const port = await waitForPort(first);
    const addr = `127.0.0.1:${port}`;

    const watch = startCli(["watch", "--addr", addr]);
    await watch.waitForStdout(/SNAPSHOT sessions=0\n/);
    const before = await runCli(["register", "--path", "/work/before", "--json", "--addr", addr]);
    expect(before.code, summary(before)).to.equal(0);
    const revision = (JSON.parse(before.stdout) as { revision: number }).revision;
    await watch.waitForStdout(/REGISTERED .*path=\/work\/before/);

    first.child.kill("SIGTERM");
    expect((await first.exited).code, first.stderr()).to.equal(0);
    await eventually(() => watch.stderr().includes("reconnecting..."), "the watch to say it reconnects", 30_000);

    // Another daemon on the same address and etcd prefix: the watch's history is still there.
    const second = daemon(addr, prefix);
    await waitForPort(second);
    await eventually(() => watch.stderr().includes("resumed"), "the watch to say it resumed", 30_000);
    const after = await runCli(["register", "--path", "/work/after", "--addr", addr]);
    expect(after.code, summary(after)).to.equal(0);
    await watch.waitForStdout(/REGISTERED .*path=\/work\/after/);

    watch.child.kill("SIGINT");
    const r = await watch.exited;
    expect(r.code, summary(r)).to.equal(0);
    // Once each, however many attempts it took to find the new daemon.
    expect(r.stderr).to.equal(
      "session-registry: lost the watch (the daemon is shutting down); reconnecting...\n" +
        `session-registry: resumed at revision ${revision + 1}\n`,
    );
    expect(r.stdout).to.not.match(/SNAPSHOT.*\n.*SNAPSHOT/s);
    second.child.kill("SIGTERM");
    expect((await second.exited).code, second.stderr()).to.equal(0);
  });

  it("a write the SDK retries says so once per attempt, then fails with the store's outage and exit 8", async () => {
    await etcd().restart();
    const d = daemon("127.0.0.1:0", uniquePrefix());
    const addr = `127.0.0.1:${await waitForPort(d)}`;
    etcd().kill9();
    const r = await runCli(["register", "--path", "/work/retried", "--addr", addr, "--timeout", "30s"]);
    expect(r.code, summary(r)).to.equal(8);
    expect(r.stdout).to.equal("");
    const lines = r.stderr.split("\n").filter((l) => l !== "");
    const notes = lines.slice(0, -1);
    // The SDK makes 5 attempts in all: a note before each of the 4 retries.
    expect(notes).to.have.length(4);
    notes.forEach((note, i) =>
      expect(note).to.match(
        new RegExp(
          `^session-registry: register failed \\(the registry's store is unavailable\\); retrying in \\d+\\.\\d s \\(attempt ${i + 2} of 5\\)\\.\\.\\.$`,
        ),
      ),
    );
    expect(lines.at(-1)).to.match(/^The registry's store \(etcd at http:\/\/127\.0\.0\.1:\d+\) is unavailable: etcd /);
    await etcd().restart();
    d.child.kill("SIGTERM");
    expect((await d.exited).code, d.stderr()).to.equal(0);
  });
});
