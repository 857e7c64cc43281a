/**
 * What a daemon says about itself (GetServerInfo): its version, the store
 * its tables live in, and whether that store serves now. The daemon knows
 * all three and hands them over as a function, read at each call, so that
 * store availability is current; the transport only converts the result.
 */
export interface ServerInfo {
  /** The package's version, e.g. "0.1.0". */
  version: string;
  /** The store kind: "memory" or "etcd" (the daemon's --store). */
  store: string;
  /** False while the store (etcd) is unreachable; always true for memory. */
  storeAvailable: boolean;
}

export type ServerInfoSource = () => ServerInfo;
