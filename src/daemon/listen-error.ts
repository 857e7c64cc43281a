/**
 * What a person reads when the daemon cannot listen where a flag says
 * (--listen, --http-listen, --metrics-listen): which address, why in words, and what to
 * change. The usual causes are the flag's value (a port taken, a privileged
 * port, an address or name this machine does not have), so they are
 * ConfigErrors, which main turns into exit code 2; anything else stays a
 * plain Error (exit 1). Also how the HTTP listeners (metrics, Connect) bind.
 */
import type { Server } from "node:net";

import { parseListen } from "../args/index.js";
import { ConfigError } from "./config.js";

type ListenFlag = "--listen" | "--http-listen" | "--metrics-listen";

/**
 * Binds `server` where the flag says; resolves with `host:port` and the
 * bound port (IPv6 hosts in brackets), rejects with listenError.
 */
export async function listenOn(server: Server, flag: ListenFlag, listen: string): Promise<string> {
  const { host, port } = parseListen(listen);
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(listenError(flag, listen, err));
    };
    server.once("error", onError);
    server.listen({ host, port }, () => {
      server.off("error", onError);
      resolve();
    });
  });
  const bound = server.address();
  const boundPort = typeof bound === "object" && bound !== null ? bound.port : port;
  return `${host.includes(":") ? `[${host}]` : host}:${boundPort}`;
}

export function listenError(flag: ListenFlag, listen: string, err: unknown): Error {
  const e = err as NodeJS.ErrnoException | null | undefined;
  const code = e?.code ?? "";
  const text = `${code} ${e instanceof Error ? e.message : String(err)}`;
  const fix = `choose another ${flag}`;
  if (/EADDRINUSE/.test(text)) {
    return new ConfigError(`port ${listen} is in use (another process listens on it); stop that process or ${fix}`, { cause: err });
  }
  if (/EACCES/.test(text)) {
    return new ConfigError(`cannot listen on ${listen}: permission denied (ports below 1024 need privileges); ${fix}`, { cause: err });
  }
  if (/EADDRNOTAVAIL/.test(text)) {
    return new ConfigError(`cannot listen on ${listen}: no network interface of this machine has that address; ${fix}`, { cause: err });
  }
  if (/ENOTFOUND|EAI_AGAIN|EAI_NONAME/.test(text)) {
    return new ConfigError(`cannot listen on ${listen}: the host name does not resolve; ${fix}`, { cause: err });
  }
  return new Error(`cannot listen on ${listen}: ${code !== "" ? code : text.trim()}`, { cause: err });
}
