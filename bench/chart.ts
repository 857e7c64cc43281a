/**
 * The chart of BENCHMARKS.md, as a self-contained SVG (no dependency, no
 * script, no external font): left, the in-process store's lookup cost
 * against table size; right, calls/s against calls in flight for the bare
 * grpc-js no-op server and the daemon's Lookup. Both x axes are logarithmic.
 * A missing series or point is left out, never an error: the chart shows
 * what results.json has.
 *
 *   node --import tsx bench/chart.ts   # bench/results.json -> bench/chart.svg
 */
import { readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";

const WIDTH = 1000;
const HEIGHT = 420;
const PANEL = { width: 380, height: 270, top: 80 };
const LEFTS = [80, 580];
const COLORS = { lookupCost: "#1f6feb", noop: "#6e7781", daemon: "#d1242f" };

interface Point {
  x: number;
  y: number;
}

interface Series {
  label: string;
  color: string;
  points: Point[];
  /** Draws each point's value next to it. */
  labelled?: boolean;
  dashed?: boolean;
}

interface Panel {
  left: number;
  title: string;
  subtitle: string;
  xLabel: string;
  yLabel: string;
  /** Base of the logarithmic x axis: 10 or 2. */
  xBase: number;
  xTick: (x: number) => string;
  yTick: (y: number) => string;
  pointLabel: (y: number) => string;
  series: Series[];
}

/** `{"10": 0.2, "1000": 0.3}` -> points with a positive x and a finite y >= 0, by x. */
function points(value: unknown): Point[] {
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value as Record<string, unknown>)
    .map(([k, v]) => ({ x: Number(k), y: v }))
    .filter((p): p is Point => Number.isFinite(p.x) && p.x > 0 && typeof p.y === "number" && Number.isFinite(p.y) && p.y >= 0)
    .sort((a, b) => a.x - b.x);
}

function escape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

/** 1,000 -> "1k", 1,000,000 -> "1M". */
function siCount(x: number): string {
  if (x >= 1e6) return `${+(x / 1e6).toPrecision(3)}M`;
  if (x >= 1e3) return `${+(x / 1e3).toPrecision(3)}k`;
  return String(+x.toPrecision(3));
}

/** Up to three significant digits, without trailing zeros. */
function short(y: number): string {
  return y >= 1000 ? Math.round(y).toLocaleString("en-US") : String(+y.toPrecision(3));
}

/** 0, step, 2 step, ... up to at least `max`, with step 1, 2 or 5 times a power of ten, about 5 ticks. */
function linearTicks(max: number): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw)!;
  const ticks: number[] = [];
  for (let i = 0; ; i++) {
    const t = +(i * step).toPrecision(12);
    ticks.push(t);
    if (t >= max) break;
  }
  return ticks;
}

/** The powers of `base` covering [min, max]. */
function logTicks(min: number, max: number, base: number): number[] {
  const lo = Math.floor(Math.log(min) / Math.log(base) + 1e-9);
  const hi = Math.ceil(Math.log(max) / Math.log(base) - 1e-9);
  const ticks: number[] = [];
  for (let e = lo; e <= Math.max(hi, lo + 1); e++) ticks.push(base ** e);
  return ticks;
}

function renderPanel(p: Panel): string {
  const { width, height, top } = PANEL;
  const left = p.left;
  const bottom = top + height;
  const all = p.series.flatMap((s) => s.points);
  const out: string[] = [];
  out.push(
    `<text x="${left + width / 2}" y="${top - 44}" text-anchor="middle" font-size="15" font-weight="bold">${escape(p.title)}</text>`,
  );
  out.push(`<text x="${left + width / 2}" y="${top - 26}" text-anchor="middle" font-size="11" fill="#57606a">${escape(p.subtitle)}</text>`);

  // Without data the axes still show, with a word saying why they are empty.
  const xs = all.map((q) => q.x);
  const xTicks = logTicks(xs.length > 0 ? Math.min(...xs) : 1, xs.length > 0 ? Math.max(...xs) : p.xBase ** 3, p.xBase);
  // Headroom above the highest point, for its label.
  const yTicks = linearTicks(all.length > 0 ? Math.max(...all.map((q) => q.y)) * 1.08 : 0);
  const lx0 = Math.log(xTicks[0]!);
  const lx1 = Math.log(xTicks[xTicks.length - 1]!);
  const yMax = yTicks[yTicks.length - 1]!;
  const sx = (x: number) => left + ((Math.log(x) - lx0) / (lx1 - lx0)) * width;
  const sy = (y: number) => bottom - (y / yMax) * height;
  const f = (n: number) => n.toFixed(1);

  for (const t of yTicks) {
    out.push(
      `<line x1="${left}" x2="${left + width}" y1="${f(sy(t))}" y2="${f(sy(t))}" stroke="#d0d7de" stroke-width="${t === 0 ? 1 : 0.5}"/>`,
    );
    out.push(`<text x="${left - 8}" y="${f(sy(t) + 4)}" text-anchor="end" font-size="11">${escape(p.yTick(t))}</text>`);
  }
  for (const t of xTicks) {
    out.push(`<line x1="${f(sx(t))}" x2="${f(sx(t))}" y1="${top}" y2="${bottom}" stroke="#d0d7de" stroke-width="0.5"/>`);
    out.push(`<text x="${f(sx(t))}" y="${bottom + 18}" text-anchor="middle" font-size="11">${escape(p.xTick(t))}</text>`);
  }
  out.push(`<rect x="${left}" y="${top}" width="${width}" height="${height}" fill="none" stroke="#57606a"/>`);
  out.push(`<text x="${left + width / 2}" y="${bottom + 40}" text-anchor="middle" font-size="12">${escape(p.xLabel)}</text>`);
  const yMid = top + height / 2;
  out.push(
    `<text x="${left - 56}" y="${yMid}" text-anchor="middle" font-size="12" transform="rotate(-90 ${left - 56} ${yMid})">${escape(p.yLabel)}</text>`,
  );
  if (all.length === 0) {
    out.push(`<text x="${left + width / 2}" y="${yMid}" text-anchor="middle" font-size="13" fill="#57606a">no data in results.json</text>`);
  }

  for (const s of p.series) {
    if (s.points.length === 0) continue;
    const path = s.points.map((q) => `${f(sx(q.x))},${f(sy(q.y))}`).join(" ");
    if (s.points.length > 1) {
      out.push(`<polyline points="${path}" fill="none" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`);
    }
    for (const q of s.points) {
      out.push(
        `<circle cx="${f(sx(q.x))}" cy="${f(sy(q.y))}" r="3.5" fill="${s.color}"><title>${escape(`${s.label}: ${p.xTick(q.x)} -> ${p.pointLabel(q.y)}`)}</title></circle>`,
      );
      if (s.labelled) {
        out.push(
          `<text x="${f(sx(q.x))}" y="${f(sy(q.y) - 9)}" text-anchor="middle" font-size="10" fill="${s.color}">${escape(p.pointLabel(q.y))}</text>`,
        );
      }
    }
  }

  // The legend, top left inside the plot.
  p.series.forEach((s, i) => {
    const y = top + 16 + i * 17;
    out.push(
      `<line x1="${left + 10}" x2="${left + 34}" y1="${y}" y2="${y}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="6 4"' : ""}/>`,
    );
    out.push(`<circle cx="${left + 22}" cy="${y}" r="3.5" fill="${s.color}"/>`);
    const missing = s.points.length === 0 ? " (no data)" : "";
    out.push(`<text x="${left + 40}" y="${y + 4}" font-size="11">${escape(s.label + missing)}</text>`);
  });
  return out.join("\n");
}

/** The chart for `results` (the object written to results.json), as an SVG document. */
export function renderChart(results: Record<string, unknown>): string {
  const rps = (results.rps_by_concurrency ?? {}) as Record<string, unknown>;
  const lookupMax = points(results.lookup_us_by_table_size).at(-1)?.x;
  const panels: Panel[] = [
    {
      left: LEFTS[0]!,
      title: "Lookup cost by table size",
      subtitle: "memory store in-process, Lookup by id, random keys (median round)",
      xLabel: "sessions in the table (log scale)",
      yLabel: "µs per lookup",
      xBase: 10,
      xTick: siCount,
      yTick: short,
      pointLabel: (y) => `${short(y)} µs`,
      series: [{ label: "Store.lookup by id", color: COLORS.lookupCost, points: points(results.lookup_us_by_table_size), labelled: true }],
    },
    {
      left: LEFTS[1]!,
      title: "Throughput by concurrency",
      subtitle: "unary calls over gRPC, closed loop, on the same 2 cores",
      xLabel: "calls in flight (log scale)",
      yLabel: "calls/s",
      xBase: 2,
      xTick: siCount,
      yTick: (y) => (y >= 1000 ? `${+(y / 1000).toPrecision(3)}k` : short(y)),
      pointLabel: (y) => `${short(y)} calls/s`,
      series: [
        { label: "bare grpc-js no-op", color: COLORS.noop, points: points(rps.noop), dashed: true },
        { label: "daemon Lookup", color: COLORS.daemon, points: points(rps.lookup) },
      ],
    },
  ];
  const footer = [results.mode, results.date, results.node, results.cpus].filter((v): v is string => typeof v === "string");
  if (lookupMax !== undefined && lookupMax < 1e6) footer.push(`largest table measured: ${siCount(lookupMax)}`);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="Helvetica, Arial, sans-serif" fill="#24292f">`,
    `<title>session-registry benchmarks: lookup cost by table size, throughput by concurrency</title>`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#ffffff"/>`,
    ...panels.map(renderPanel),
    `<text x="${WIDTH / 2}" y="${HEIGHT - 8}" text-anchor="middle" font-size="10" fill="#57606a">${escape(footer.join(" · "))}</text>`,
    `</svg>`,
    "",
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const results = JSON.parse(readFileSync(new URL("results.json", import.meta.url), "utf8")) as Record<string, unknown>;
  const out = new URL("chart.svg", import.meta.url);
  writeFileSync(out, renderChart(results));
  console.log(`written to ${out.pathname}`);
}
