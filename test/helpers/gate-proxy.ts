/**
 * A TCP proxy on 127.0.0.1:0 with a gate: open, it forwards every
 * connection to the target; shut, it drops the connections it carries and
 * refuses new ones. A test decides exactly when a client (a daemon's etcd
 * client, say) can reach its server again, instead of racing its reconnects.
 */
import { connect, createServer, type Server, type Socket } from "node:net";

export interface GateProxy {
  /** "127.0.0.1:PORT" */
  address: string;
  open(): void;
  /** Drops every carried connection and refuses new ones until open(). */
  shut(): void;
  close(): Promise<void>;
}

export async function startGateProxy(targetHost: string, targetPort: number): Promise<GateProxy> {
  let isOpen = true;
  const sockets = new Set<Socket>();
  const server: Server = createServer((client) => {
    if (!isOpen) {
      client.destroy();
      return;
    }
    const upstream = connect(targetPort, targetHost);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      // A reset on either side ends both; the error itself is the point of the test, not a failure.
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");
  const dropAll = () => {
    for (const s of sockets) s.destroy();
    sockets.clear();
  };
  return {
    address: `127.0.0.1:${address.port}`,
    open() {
      isOpen = true;
    },
    shut() {
      isOpen = false;
      dropAll();
    },
    async close() {
      isOpen = false;
      dropAll();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
