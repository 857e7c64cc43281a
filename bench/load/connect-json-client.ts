/**
 * Connect unary calls with JSON bodies over HTTP/1.1, as a client without a
 * gRPC stack makes them: node's http.Agent with keep-alive, one connection
 * per call in flight (HTTP/1.1 carries one request at a time), each request
 * body encoded once by the caller. A call succeeds on HTTP 200; the answer
 * is read and dropped, not parsed.
 */
import { Agent, request } from "node:http";

export class ConnectJsonChannel {
  private readonly agent: Agent;
  private readonly host: string;
  private readonly port: number;

  /** `connections`: the most calls in flight, each on a keep-alive connection of its own. */
  constructor(
    address: string,
    private readonly connections: number,
  ) {
    const colon = address.lastIndexOf(":");
    this.host = address.slice(0, colon).replace(/^\[(.*)\]$/, "$1");
    this.port = Number(address.slice(colon + 1));
    // noDelay, as the HTTP/2 client sets it: Nagle would hold a small write back until the peer's delayed ACK.
    this.agent = new Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, noDelay: true });
  }

  /** Opens the connections (one GetServerInfo on each, all at once), so that none opens inside a measured window. */
  async connected(): Promise<void> {
    const empty = Buffer.from("{}");
    await Promise.all(
      Array.from({ length: this.connections }, () => this.unary("/sessionregistry.v1.SessionRegistry/GetServerInfo", empty)),
    );
  }

  unary(path: string, body: Uint8Array): Promise<void> {
    return new Promise((resolve, reject) => {
      const req = request(
        {
          agent: this.agent,
          host: this.host,
          port: this.port,
          method: "POST",
          path,
          headers: { "content-type": "application/json", "content-length": body.byteLength },
        },
        (res) => {
          if (res.statusCode === 200) {
            res.on("end", resolve).resume();
            return;
          }
          let text = "";
          res.setEncoding("utf8").on("data", (chunk: string) => (text += chunk));
          res.on("end", () => reject(new Error(`HTTP ${res.statusCode}: ${text}`)));
        },
      );
      req.on("error", reject);
      req.end(body);
    });
  }

  close(): void {
    this.agent.destroy();
  }
}
