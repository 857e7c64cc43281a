/**
 * Commands run as a user would run them from a shell, for the install
 * tests: to completion, in a given directory and environment, with stdout
 * returned and both outputs in the error when the command fails.
 */
import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export type Shell = (command: string, args: string[], cwd: string) => Promise<string>;

/** A shell whose commands all run with `env` (and nothing else) as their environment. */
export function userShell(env: NodeJS.ProcessEnv): Shell {
  return async (command, args, cwd) => {
    try {
      const { stdout } = await run(command, args, { cwd, env, maxBuffer: 16 * 1024 * 1024 });
      return stdout;
    } catch (err) {
      const e = err as { stdout?: string; stderr?: string; message: string };
      throw new Error(`${command} ${args.join(" ")} (in ${cwd}) failed:\n${e.stdout ?? ""}\n${e.stderr ?? e.message}`);
    }
  };
}
