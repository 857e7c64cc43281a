/**
 * npm runs a script through a shell (`npm start`, `npx session-registry
 * serve`). On SIGTERM or SIGINT npm passes the signal to that shell, which
 * dies of it without passing it on, and the daemon would live on, adopted by
 * PID 1 and still listening. In this repository the shell is out of the way
 * (`exec` in `npm start`, bash from .npmrc for npx); under another npm
 * configuration it may not be, so a daemon that npm started also stops when
 * its parent goes away, seen as a change of its parent PID. A daemon started any other way (a
 * supervisor, `session-registry serve &` in a script) is left alone: outliving
 * its parent may be what its user wants.
 */

/** Whether npm (run-script or exec) started this process: npm sets npm_lifecycle_event or npm_command for its children. */
export function startedByNpm(env: NodeJS.ProcessEnv): boolean {
  return Boolean(env.npm_lifecycle_event || env.npm_command);
}

/** Calls `orphaned` once, when the parent process is gone; returns a function that stops watching. */
export function watchParent(orphaned: (parentPid: number) => void, intervalMs = 250): () => void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    orphaned(parent);
  }, intervalMs);
  // Never what keeps the process alive.
  timer.unref();
  return () => clearInterval(timer);
}
