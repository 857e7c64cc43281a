/**
 * A bench-only daemon entry: the daemon as `src/daemon/main.ts` starts it
 * (same flags, same startDaemon), over a memory store that already holds
 * two tables before it listens: `big` with --sessions sessions (1,000,000
 * for the figures) and `small` with 10, both filled directly through the
 * store with the sessions of ./sessions.ts (session i in each). Filling a
 * million through gRPC would take minutes; the figure is about looking up,
 * not registering.
 *
 *   node --conditions=source --import tsx bench/lookup-scale-daemon.ts --sessions N [daemon flags]
 *
 * Prints "listening on <address>" once both tables are full; stops on SIGTERM.
 */
import { parseConfig } from "../src/daemon/config.js";
import { createLogger } from "../src/daemon/logger.js";
import { startDaemon } from "../src/daemon/server.js";
import { MemoryStore } from "../src/store/memory/store.js";
import { BIG_TABLE, idOf, nameOf, pathOf, SMALL_SESSIONS, SMALL_TABLE } from "./sessions.js";

const argv = process.argv.slice(2);
const at = argv.indexOf("--sessions");
const sessions = at >= 0 ? Number(argv.splice(at, 2)[1]) : 1_000_000;
if (!Number.isSafeInteger(sessions) || sessions < SMALL_SESSIONS) throw new Error(`--sessions must be an integer >= ${SMALL_SESSIONS}`);

const config = parseConfig(argv, process.env);
const store = new MemoryStore({
  defaultMaxSessions: config.maxSessions,
  maxTables: config.maxTables,
  watchHistory: config.watchHistory,
  watchHistoryBytes: config.watchHistoryBytes,
});
for (const [table, size] of [
  [BIG_TABLE, sessions],
  [SMALL_TABLE, SMALL_SESSIONS],
] as const) {
  await store.createTable(table, size);
  for (let i = 0; i < size; i++) {
    await store.register(table, { id: idOf(i), name: nameOf(i), projectPath: pathOf(i), metadata: new Map(), ttl: undefined });
  }
}

const daemon = await startDaemon(config, { store, logger: createLogger({ level: config.logLevel }) });
console.log(`listening on ${daemon.address}`);
process.once("SIGTERM", () => {
  void daemon.shutdown().then(() => process.exit(0));
});
