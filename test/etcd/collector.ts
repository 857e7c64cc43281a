/**
 * Helpers of the etcd tests: a watch consumed in the background (so that a
 * test can write, then wait for what the watch saw), bounded waits for a
 * condition, and daemons on one etcd.
 */
import type { SessionRegistryClient, WatchItem, WatchOptions, WatchStream } from "@session-registry/client";

import { startTestDaemon, type TestDaemon } from "../helpers/daemon.js";

export const WAIT_MS = 15_000;

/** Polls `condition` every 50 ms until it holds; fails with `what` after `timeoutMs`. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if (await condition()) return;
    } catch {
      // Not yet: e.g. the daemon still answers UNAVAILABLE.
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

export class WatchCollector {
  readonly items: WatchItem[] = [];
  error: unknown;
  private readonly done: Promise<void>;
  private readonly stream: WatchStream;

  constructor(client: SessionRegistryClient, options: WatchOptions) {
    const stream = client.watch(options);
    this.stream = stream;
    this.done = (async () => {
      try {
        for await (const item of stream) this.items.push(item);
      } catch (err) {
        this.error = err;
      }
    })();
  }

  get events(): Extract<WatchItem, { kind: "event" }>[] {
    return this.items.filter((i): i is Extract<WatchItem, { kind: "event" }> => i.kind === "event");
  }

  /** Waits until the first snapshot arrived (the watch is registered on the daemon). */
  async started(): Promise<void> {
    await waitFor("the watch's snapshot", () => this.items.length > 0 || this.error !== undefined);
    if (this.error instanceof Error) throw this.error;
    if (this.error !== undefined) throw new Error("the watch failed", { cause: this.error });
  }

  async close(): Promise<void> {
    this.stream.close();
    await this.done;
  }
}

export function etcdDaemon(endpoint: string, prefix: string, config: Record<string, unknown> = {}): Promise<TestDaemon> {
  return startTestDaemon({ config: { store: "etcd", etcdEndpoints: [endpoint], etcdPrefix: prefix, ...config } });
}
