/** A Connect stream's request message for tests that speak the wire with plain fetch: JSON in a 5-byte envelope. */
export function envelope(body: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(body));
  const out = new Uint8Array(5 + json.length);
  new DataView(out.buffer).setUint32(1, json.length);
  out.set(json, 5);
  return out;
}

/** A whole Connect stream body, JSON: its messages in order, and its end-of-stream message (flag 2); undefined when the body has none. */
export function unenvelope(bytes: Uint8Array): { messages: Record<string, unknown>[]; end: Record<string, unknown> | undefined } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const messages: Record<string, unknown>[] = [];
  for (let at = 0; at + 5 <= bytes.length;) {
    const length = view.getUint32(at + 1);
    const data = JSON.parse(new TextDecoder().decode(bytes.subarray(at + 5, at + 5 + length))) as Record<string, unknown>;
    if (bytes[at]! & 2) return { messages, end: data };
    messages.push(data);
    at += 5 + length;
  }
  return { messages, end: undefined };
}
