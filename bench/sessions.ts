/**
 * Sessions as clients make them, reproducible from their index alone:
 * uuid-shaped ids, distinct normalized 100-byte project paths, 20-character
 * names, every string flat as protobuf decoding makes it. The in-process
 * store figures (./inprocess.ts) and the 1 M-session daemon
 * (./lookup-scale-daemon.ts) fill their tables with them, and the load
 * generator looks them up by the same ids.
 */

// Strings built by concatenation are cons strings (a tree of parts); a
// decoded request's are flat. Going through bytes makes them flat.
const scratch = Buffer.alloc(256);
export function flat(s: string): string {
  return scratch.toString("latin1", 0, scratch.write(s, 0, "latin1"));
}

/** A bijection on 32-bit integers (murmur3's finalizer), so distinct indexes give distinct ids. */
function mix32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x85ebca6b);
  x ^= x >>> 13;
  x = Math.imul(x, 0xc2b2ae35);
  x ^= x >>> 16;
  return x >>> 0;
}

const HEX = Array.from({ length: 256 }, (_, b) => b.toString(16).padStart(2, "0"));
/** Four hex bytes of x, most significant first. */
const hex32 = (x: number) => HEX[x >>> 24]! + HEX[(x >>> 16) & 255]! + HEX[(x >>> 8) & 255]! + HEX[x & 255]!;

/** Session i's id: uuid v4-shaped, distinct per i (its first 8 digits are a bijection of i), reproducible from i alone. */
export function idOf(i: number): string {
  const b = hex32(mix32(i ^ 0x9e3779b9));
  const c = hex32(mix32(i ^ 0x7f4a7c15));
  const d = hex32(mix32(i ^ 0x165667b1));
  return flat(`${hex32(mix32(i))}-${b.slice(0, 4)}-4${b.slice(5)}-a${c.slice(1, 4)}-${c.slice(4)}${d}`);
}

const PATH_HEAD = "/home/developer/workspace/github.com/example-organisation/backend-services/";
const PATH_TAIL_LENGTH = 100 - PATH_HEAD.length;
/** Session i's project path: normalized, absolute, exactly 100 bytes. */
export function pathOf(i: number): string {
  return flat(PATH_HEAD + `project-${i}`.padEnd(PATH_TAIL_LENGTH, "x"));
}

/** Session i's name: 20 characters. */
export function nameOf(i: number): string {
  return flat(`session-name-${String(i).padStart(7, "0")}`);
}

/** The tables of the 1 M-session daemon (./lookup-scale-daemon.ts): the large one, and a small one of SMALL_SESSIONS. */
export const BIG_TABLE = "big";
export const SMALL_TABLE = "small";
export const SMALL_SESSIONS = 10;
