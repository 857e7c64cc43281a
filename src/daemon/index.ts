/**
 * The daemon as a library (`import { startDaemon } from "session-registry/daemon"`):
 * what the command line does, for a program that embeds the registry.
 * parseConfig reads the same flags and environment variables as `serve`.
 */
export { ConfigError, DEFAULT_CONFIG, parseConfig, type DaemonConfig } from "./config.js";
export { startDaemon, type DaemonDeps, type RunningDaemon } from "./server.js";
