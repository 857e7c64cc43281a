/**
 * Starts the daemon the way users do (`npm start` runs exactly this command,
 * minus npm), as its own process, and stops it with SIGTERM.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

export interface DaemonProcess {
  address: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

export async function startDaemonProcess(flags: string[]): Promise<DaemonProcess> {
  const child = spawn(
    process.execPath,
    ["--conditions=source", "--import", "tsx", "src/daemon/main.ts", "--listen", "127.0.0.1:0", "--log-level", "warn", ...flags],
    { cwd: ROOT, stdio: ["ignore", "pipe", "inherit"] },
  );
  const address = await new Promise<string>((resolve, reject) => {
    let out = "";
    child.stdout!.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      const m = /listening on (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.once("exit", (code) => reject(new Error(`daemon exited with ${code} before listening`)));
  });
  return {
    address,
    child,
    async stop() {
      if (child.exitCode !== null) return;
      child.kill("SIGTERM");
      await once(child, "exit");
    },
  };
}
