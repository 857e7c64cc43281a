/**
 * Just enough of Markdown, as GitHub renders it, to check the docs: the
 * prose without its code, the relative links, the anchors that headings
 * make (GitHub's slugs), and the rows of a table.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";

import { REPO_ROOT } from "../cli/cli-process.js";

/** Markdown files by path relative to the repository: README.md and everything under docs/. */
export function docsFiles(): string[] {
  const walk = (dir: string): string[] =>
    readdirSync(join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((e) =>
      e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith(".md") ? [join(dir, e.name)] : [],
    );
  return ["README.md", ...walk("docs")];
}

export function readDoc(path: string): string {
  return readFileSync(join(REPO_ROOT, path), "utf8");
}

/** The text with every fenced code block's lines blanked (line numbers stay). */
export function withoutCodeBlocks(text: string): string {
  let fence: string | undefined;
  return text
    .split("\n")
    .map((line) => {
      const m = /^ {0,3}(`{3,}|~{3,})/.exec(line);
      if (fence === undefined) {
        if (m === null) return line;
        fence = m[1]!;
        return "";
      }
      if (m !== null && m[1]![0] === fence[0] && m[1]!.length >= fence.length && line.trim() === m[1]) fence = undefined;
      return "";
    })
    .join("\n");
}

/** The prose: no code blocks, and each code span (which may run over a line, not a paragraph) replaced by `code`. */
export function prose(text: string): string {
  return withoutCodeBlocks(text).replace(/(`+)((?:(?!\n[ \t]*\n)[\s\S])*?[^`])\1(?!`)/g, "code");
}

export interface Link {
  line: number;
  target: string;
}

/** Every link and image target of the prose: inline, reference definitions, and HTML href/src. */
export function links(text: string): Link[] {
  const body = prose(text);
  const patterns = [
    /!?\[(?:[^[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+(?:"[^"]*"|'[^']*'))?\s*\)/g,
    /^ {0,3}\[[^\]]+\]:\s*<?([^\s>]+)>?/gm,
    /<(?:a|img)\s[^>]*?(?:href|src)="([^"]+)"/g,
  ];
  const out: Link[] = [];
  for (const pattern of patterns) {
    for (const m of body.matchAll(pattern)) {
      out.push({ line: body.slice(0, m.index).split("\n").length, target: m[1]! });
    }
  }
  return out;
}

/** The anchors a page's headings make, as GitHub makes them: github-slugger, with -1, -2 ... for repeats. */
export function anchors(text: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const line of withoutCodeBlocks(text).split("\n")) {
    const m = /^ {0,3}#{1,6}[ \t]+(.*?)(?:[ \t]+#+)?[ \t]*$/.exec(line);
    if (m === null) continue;
    const base = slug(m[1]!);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  for (const m of text.matchAll(/<a\s[^>]*?(?:id|name)="([^"]+)"/g)) out.add(m[1]!);
  return out;
}

/** GitHub's slug of a heading: its text (links and images as their text, no tags), lowercased, punctuation dropped, spaces to hyphens. */
export function slug(heading: string): string {
  return heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, "$1")
    .replace(/<[^>]+>/g, "")
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, "")
    .replace(/ /g, "-");
}

/** The cells of each row of the first table whose header row is `header` (cells trimmed; `\|` kept inside a cell). */
export function tableRows(text: string, header: readonly string[]): string[][] {
  const cells = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, "")
      .split(/(?<!\\)\|/)
      .map((c) => c.trim());
  const lines = withoutCodeBlocks(text).split("\n");
  const start = lines.findIndex((l) => l.trim().startsWith("|") && cells(l).join("|") === header.join("|"));
  if (start < 0) return [];
  const rows: string[][] = [];
  for (const line of lines.slice(start + 2)) {
    if (!line.trim().startsWith("|")) break;
    rows.push(cells(line));
  }
  return rows;
}
