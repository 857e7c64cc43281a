/**
 * The live page's files served at `/` of the HTTP listener: index.html,
 * app.js and app.css as scripts/build.mjs bundled them into dist/page, read
 * once into memory (with a gzip copy), answered to GET and HEAD with their
 * content type, an ETag (revalidated on every load: Cache-Control no-cache)
 * and a Content-Security-Policy that lets the page load only its own files
 * and talk only to its own origin. The HTTP listener hands it what is not
 * an RPC.
 */
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { gzipSync } from "node:zlib";

import { PAGE_DIR_URL } from "../assets.js";

export interface PageAsset {
  type: string;
  body: Buffer;
  gzip: Buffer;
  etag: string;
}

/** The page's assets by URL path. */
export type PageAssets = ReadonlyMap<string, PageAsset>;

const FILES: readonly (readonly [path: string, file: string, type: string])[] = [
  ["/", "index.html", "text/html; charset=utf-8"],
  ["/app.js", "app.js", "text/javascript; charset=utf-8"],
  ["/app.css", "app.css", "text/css; charset=utf-8"],
];

/** No inline script or style, no other origin: the page's own files and its own RPCs. */
export const PAGE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/** Reads the built page; undefined when it is not built (a clone before `npm run build`): `/` then answers 404 saying so. */
export async function loadPage(dir: URL = PAGE_DIR_URL): Promise<PageAssets | undefined> {
  const assets = new Map<string, PageAsset>();
  for (const [path, file, type] of FILES) {
    let body: Buffer;
    try {
      body = await readFile(new URL(file, dir));
    } catch {
      return undefined;
    }
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 22)}"`;
    assets.set(path, { type, body, gzip: gzipSync(body), etag });
  }
  assets.set("/index.html", assets.get("/")!);
  return assets;
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/**
 * The listener's handler for what is not an RPC: the page, read from `dir`
 * at its first request (so the daemon's start-up reads nothing for it), and
 * `otherwise` (by default a plain 404) for any other path or method.
 */
export function pageHandler(dir: URL = PAGE_DIR_URL, otherwise: Handler = notFound): Handler {
  let assets: Promise<PageAssets | undefined> | undefined;
  return (req, res) => {
    if (!isPageRequest(req)) {
      otherwise(req, res);
      return;
    }
    assets ??= loadPage(dir);
    void assets.then((a) => {
      if (!servePage(a, req, res)) otherwise(req, res);
    });
  };
}

function isPageRequest(req: IncomingMessage): boolean {
  const path = pathOf(req);
  return (req.method === "GET" || req.method === "HEAD") && (path === "/index.html" || FILES.some(([p]) => p === path));
}

function pathOf(req: IncomingMessage): string {
  return (req.url ?? "/").split("?")[0]!;
}

function notFound(_req: IncomingMessage, res: ServerResponse): void {
  res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
  res.end("Not found\n");
}

/** Answers the request if it is a GET or HEAD of one of the page's paths; false if it is not one. */
export function servePage(assets: PageAssets | undefined, req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== "GET" && req.method !== "HEAD") return false;
  const path = pathOf(req);
  if (assets === undefined) {
    if (path !== "/") return false;
    res.writeHead(404, { "content-type": "text/plain; charset=utf-8", "x-content-type-options": "nosniff" });
    res.end("The page is not built: run `npm run build`.\n");
    return true;
  }
  const asset = assets.get(path);
  if (asset === undefined) return false;
  const headers: Record<string, string> = {
    "content-type": asset.type,
    "cache-control": "no-cache",
    etag: asset.etag,
    vary: "accept-encoding",
    "content-security-policy": PAGE_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
  };
  if (req.headers["if-none-match"] === asset.etag) {
    res.writeHead(304, headers);
    res.end();
    return true;
  }
  const gzip = /\bgzip\b/.test(req.headers["accept-encoding"] ?? "");
  const body = gzip ? asset.gzip : asset.body;
  if (gzip) headers["content-encoding"] = "gzip";
  headers["content-length"] = String(body.length);
  res.writeHead(200, headers);
  res.end(req.method === "HEAD" ? undefined : body);
  return true;
}
