/**
 * Connect JSON as a client with no gRPC stack speaks it, with plain fetch:
 * a unary call, and a server stream read envelope by envelope.
 */
import { envelope } from "./envelope.js";

export const SERVICE = "sessionregistry.v1.SessionRegistry";

export interface ErrorJson {
  code: string;
  message: string;
  details?: { type: string; value: string; debug?: { reason?: string; metadata?: Record<string, string>; fieldViolations?: unknown[] } }[];
}

export async function post(base: string, method: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}/${SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: (text === "" ? {} : JSON.parse(text)) as Record<string, unknown> & ErrorJson };
}

/**
 * Reads a Connect server stream (JSON): 5-byte envelopes, the last (flag 2)
 * the end of stream; `received` hears of each message as it arrives.
 */
export async function watchMessages(
  base: string,
  body: unknown,
  count: number,
  { method = "Watch", received }: { method?: string; received?: (n: number) => Promise<unknown> } = {},
): Promise<{ messages: Record<string, unknown>[]; end?: unknown }> {
  const controller = new AbortController();
  const res = await fetch(`${base}/${SERVICE}/${method}`, {
    method: "POST",
    headers: { "content-type": "application/connect+json" },
    body: envelope(body),
    signal: controller.signal,
  });
  const reader: ReadableStreamDefaultReader<Uint8Array> = res.body!.getReader();
  let buffer: Uint8Array = new Uint8Array(0);
  const messages: Record<string, unknown>[] = [];
  for (;;) {
    while (buffer.length >= 5) {
      const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(1);
      if (buffer.length < 5 + length) break;
      const flags = buffer[0]!;
      const data = JSON.parse(new TextDecoder().decode(buffer.subarray(5, 5 + length))) as Record<string, unknown>;
      buffer = buffer.subarray(5 + length);
      if (flags & 2) return { messages, end: data };
      messages.push(data);
      await received?.(messages.length);
      if (messages.length === count) {
        controller.abort();
        return { messages };
      }
    }
    const { done, value } = await reader.read();
    if (done) return { messages };
    const next = new Uint8Array(buffer.length + value.length);
    next.set(buffer);
    next.set(value, buffer.length);
    buffer = next;
  }
}
