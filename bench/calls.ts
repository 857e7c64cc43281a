/** What the benchmarks need to talk to a server through the generated stubs. */
import type { Session } from "@session-registry/client/gen/sessionregistry/v1/session_registry";

/** A callback-style grpc-js call as a promise. */
export function call<T>(f: (cb: (err: Error | null, res: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => f((err, res) => (err ? reject(err) : resolve(res))));
}

/** A Session to register: the given fields, everything the daemon assigns left unset. */
export function sessionMessage(s: { id: string; projectPath: string; name?: string; metadata?: Map<string, string> }): Session {
  return {
    id: s.id,
    name: s.name ?? "",
    projectPath: s.projectPath,
    metadata: s.metadata ?? new Map<string, string>(),
    createTime: undefined,
    updateTime: undefined,
    revision: 0,
    ttl: undefined,
    expireTime: undefined,
    tableUid: "",
  };
}
