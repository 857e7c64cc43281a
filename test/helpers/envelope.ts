/** A Connect stream's request message for tests that speak the wire with plain fetch: JSON in a 5-byte envelope. */
export function envelope(body: unknown): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(body));
  const out = new Uint8Array(5 + json.length);
  new DataView(out.buffer).setUint32(1, json.length);
  out.set(json, 5);
  return out;
}
