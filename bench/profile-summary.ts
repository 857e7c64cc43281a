/**
 * Summarizes a V8 .cpuprofile (from `node --cpu-prof`): self time by
 * function and by where the code lives (our src/ folders, grpc-js, protobuf,
 * node internals), so a profile can be quoted in BENCHMARKS.md.
 *
 *   node --import tsx bench/profile-summary.ts <file.cpuprofile> [top]
 */
import { readFileSync } from "node:fs";

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
  children?: number[];
}
export interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives, coarse enough to add up: a src/ folder, a package, node itself, or V8. */
export function area(url: string, name: string): string {
  if (url === "") return name.startsWith("(") ? name : "(native)";
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return pkg[1]!;
  const ours = /\/(src|clients\/typescript\/src|bench)\/([^/]+)\//.exec(url);
  if (ours) return `${ours[1]}/${ours[2]}`;
  if (url.startsWith("node:")) return "node:internal";
  return url;
}

export interface SummaryOptions {
  top?: number;
  /** Only samples in [fromMs, toMs) after the profile's start. */
  fromMs?: number;
  toMs?: number;
  /** Calls handled in the window: adds µs per call to each line. */
  calls?: number;
}

export function summarize(profile: Profile, opts: SummaryOptions = {}): string {
  const top = opts.top ?? 25;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = 0;
  profile.samples.forEach((id, i) => {
    const delta = profile.timeDeltas[i] ?? 0;
    t += delta;
    if (opts.fromMs !== undefined && t < opts.fromMs * 1000) return;
    if (opts.toMs !== undefined && t >= opts.toMs * 1000) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + delta);
  });
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const fn = new Map<string, number>();
  const areas = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const n = byId.get(id)!;
    const where = area(n.callFrame.url, n.callFrame.functionName);
    const key = `${n.callFrame.functionName || "(anonymous)"}  ${n.callFrame.url.replace(/^.*node_modules\//, "")}:${n.callFrame.lineNumber + 1}`;
    fn.set(key, (fn.get(key) ?? 0) + us);
    areas.set(where, (areas.get(where) ?? 0) + us);
  }
  const perCall = (us: number) => (opts.calls ? `${(us / opts.calls).toFixed(2).padStart(7)} µs/call  ` : "");
  const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%  ${perCall(us)}`;
  const busy = total - (areas.get("(idle)") ?? 0);
  const lines = [
    `sampled: ${(total / 1e6).toFixed(2)} s, busy ${(busy / 1e6).toFixed(2)} s` +
      (opts.calls ? `, ${opts.calls} calls, ${(busy / opts.calls).toFixed(1)} µs busy per call` : ""),
    "",
    "self time by area:",
  ];
  for (const [k, us] of [...areas].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${k}`);
  lines.push("", "self time by function:");
  for (const [k, us] of [...fn].sort((a, b) => b[1] - a[1]).slice(0, top)) lines.push(`${pct(us)}  ${k}`);
  return lines.join("\n");
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error("usage: profile-summary <file.cpuprofile> [top]");
    process.exit(2);
  }
  console.log(summarize(JSON.parse(readFileSync(file, "utf8")) as Profile, { top: Number(process.argv[3] ?? 25) }));
}
