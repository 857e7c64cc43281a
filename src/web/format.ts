/** How the page writes durations, ages and metadata: short, fixed-width-friendly text. */

/** "42s", "3m 05s", "2h 07m", "3d 04h". */
export function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${pad(s % 60)}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h ${pad(m % 60)}m`;
  return `${Math.floor(h / 24)}d ${pad(h % 24)}h`;
}

function pad(n: number): string {
  return n.toString().padStart(2, "0");
}

/** "m:ss" (or "h:mm:ss") left of a countdown, for a ttl. */
export function countdown(ms: number): string {
  const s = Math.max(0, Math.ceil(ms / 1000));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h > 0 ? `${h}:${pad(m)}:${pad(s % 60)}` : `${m}:${pad(s % 60)}`;
}

/** Milliseconds since the epoch of a protobuf Timestamp's fields. */
export function millis(t: { seconds: bigint; nanos: number } | undefined): number | undefined {
  return t === undefined ? undefined : Number(t.seconds) * 1000 + Math.floor(t.nanos / 1e6);
}

/** The daemon's table_uid is opaque; its first characters tell histories apart at a glance. */
export function shortUid(uid: string): string {
  return uid.length > 8 ? uid.slice(0, 8) : uid;
}
