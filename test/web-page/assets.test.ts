/**
 * The live page's files as the HTTP listener serves them: their size, and
 * the headers that keep the page to itself (content type, CSP, no sniffing)
 * and cheap to reload (ETag, gzip). The build is mocha's global setup.
 */
import { statSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

import { expect } from "chai";

import { PAGE_DIR_URL } from "../../src/assets.js";
import { loadPage, PAGE_CSP, pageHandler } from "../../src/transport/page.js";

describe("the live page's files", () => {
  let server: Server;
  let base: string;

  before(async () => {
    expect(await loadPage(), "dist/page is built").to.not.equal(undefined);
    server = createServer(
      pageHandler(PAGE_DIR_URL, (_req, res) => {
        res.writeHead(418).end("rpc");
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  it("are an HTML page, one script and one stylesheet, under 200 KiB together", () => {
    const sizes = ["index.html", "app.js", "app.css"].map((f) => statSync(new URL(f, PAGE_DIR_URL)).size);
    expect(sizes.reduce((a, b) => a + b, 0)).to.be.below(200 * 1024);
  });

  it("are served with their content type, a strict CSP, an ETag and no sniffing", async () => {
    for (const [path, type] of [
      ["/", "text/html; charset=utf-8"],
      ["/app.js", "text/javascript; charset=utf-8"],
      ["/app.css", "text/css; charset=utf-8"],
    ] as const) {
      const res = await fetch(base + path);
      expect(res.status, path).to.equal(200);
      expect(res.headers.get("content-type"), path).to.equal(type);
      expect(res.headers.get("content-security-policy"), path).to.equal(PAGE_CSP);
      expect(res.headers.get("x-content-type-options"), path).to.equal("nosniff");
      expect(res.headers.get("cache-control"), path).to.equal("no-cache");
      expect(res.headers.get("etag"), path).to.match(/^"[\w-]+"$/);
      expect((await res.text()).length, path).to.be.above(100);
    }
    expect(PAGE_CSP).to.include("default-src 'none'").and.include("script-src 'self'").and.include("connect-src 'self'");
  });

  it("answer a revalidation with 304, and gzip to a client that takes it", async () => {
    const first = await fetch(`${base}/app.js`);
    const etag = first.headers.get("etag")!;
    expect((await fetch(`${base}/app.js`, { headers: { "if-none-match": etag } })).status).to.equal(304);
    // fetch asks for gzip and undoes it; the length on the wire is the compressed one.
    expect(first.headers.get("content-encoding")).to.equal("gzip");
    expect(Number(first.headers.get("content-length"))).to.be.below(statSync(new URL("app.js", PAGE_DIR_URL)).size / 2);
  });

  it("leave every other request to the RPCs", async () => {
    expect((await fetch(`${base}/sessionregistry.v1.SessionRegistry/List`, { method: "POST", body: "{}" })).status).to.equal(418);
    expect((await fetch(`${base}/nothing-here`)).status).to.equal(418);
    expect((await fetch(`${base}/`, { method: "POST" })).status).to.equal(418);
  });

  it("say how to build the page when it is not built", async () => {
    const missing = new URL("./no-such-folder/", PAGE_DIR_URL);
    expect(await loadPage(missing)).to.equal(undefined);
    const s = createServer(pageHandler(missing, (_req, res) => res.writeHead(418).end()));
    await new Promise<void>((resolve) => s.listen(0, "127.0.0.1", resolve));
    try {
      const res = await fetch(`http://127.0.0.1:${(s.address() as AddressInfo).port}/`);
      expect(res.status).to.equal(404);
      expect(await res.text()).to.include("npm run build");
    } finally {
      s.closeAllConnections();
      await new Promise((resolve) => s.close(resolve));
    }
  });
});
