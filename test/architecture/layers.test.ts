/**
 * The folders' layering: core imports only itself (and node built-ins), so
 * that the domain rules and the contracts they need live in one place;
 * the stores and the transport reach the domain through core, and the
 * transport never reaches into a store.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";

import { expect } from "chai";

import { REPO_ROOT } from "../cli/cli-process.js";

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? tsFiles(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

/** Every module specifier a file imports or re-exports, static or dynamic. */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(/(?:from|import)\s*\(?\s*"([^"]+)"/g)].map((m) => m[1]!);
}

function offending(folder: string, allowed: (specifier: string, file: string) => boolean): string[] {
  return tsFiles(join(REPO_ROOT, "src", folder)).flatMap((file) =>
    imports(file)
      .filter((s) => !allowed(s, file))
      .map((s) => `${relative(REPO_ROOT, file)} imports ${s}`),
  );
}

const insideSrc = (specifier: string, file: string, folder: string) =>
  specifier.startsWith(".") && relative(join(REPO_ROOT, "src"), join(file, "..", specifier)).startsWith(`${folder}/`);

/** The first import cycle among src's own modules (type-only imports count: they bind the files as much), or undefined. */
function firstCycle(): string[] | undefined {
  const src = join(REPO_ROOT, "src");
  const edges = new Map<string, string[]>();
  for (const file of tsFiles(src)) {
    const local = imports(file).filter((s) => s.startsWith("."));
    edges.set(
      relative(src, file),
      local.map((s) => relative(src, join(file, "..", s)).replace(/\.js$/, ".ts")),
    );
  }
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "open") return [...path.slice(path.indexOf(node)), node];
    state.set(node, "open");
    path.push(node);
    for (const next of edges.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle !== undefined) return cycle;
    }
    path.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of edges.keys()) {
    const cycle = visit(node);
    if (cycle !== undefined) return cycle;
  }
  return undefined;
}

describe("layers of src/", () => {
  it("core imports nothing but core and node's built-ins", () => {
    expect(offending("core", (s, file) => s.startsWith("node:") || insideSrc(s, file, "core"))).to.deep.equal([]);
  });

  it("the transport reaches no store: it sees the registry through core", () => {
    expect(offending("transport", (s, file) => !insideSrc(s, file, "store"))).to.deep.equal([]);
  });

  it("the stores reach neither the transport, the daemon nor the CLI", () => {
    const above = ["transport", "daemon", "cli"];
    expect(offending("store", (s, file) => !above.some((f) => insideSrc(s, file, f)))).to.deep.equal([]);
  });

  it("the page's browser code (src/web) reaches only itself, the generated messages and the Connect client; nothing else imports it", () => {
    const packages = ["@connectrpc/connect", "@connectrpc/connect-web", "@bufbuild/protobuf"];
    const allowed = (s: string, file: string) =>
      insideSrc(s, file, "web") || insideSrc(s, file, "gen") || packages.some((p) => s === p || s.startsWith(`${p}/`));
    expect(offending("web", allowed)).to.deep.equal([]);
    for (const folder of ["core", "store", "transport", "daemon", "cli"]) {
      expect(offending(folder, (s, file) => !insideSrc(s, file, "web"))).to.deep.equal([]);
    }
  });

  it("nothing about HTTP or a wire enters core or the stores: no node:http(s), connect or grpc-js", () => {
    const wire = (s: string) => /^node:https?$|^node:http2$|^@connectrpc\/|^@grpc\//.test(s);
    // The one exception is a client of etcd's wire, not the registry's: the read cache's probe speaks to etcd over HTTP/2 itself.
    const etcdClient = (s: string, file: string) => s === "node:http2" && relative(REPO_ROOT, file) === "src/store/etcd/revision-probe.ts";
    expect([...offending("core", (s) => !wire(s)), ...offending("store", (s, file) => !wire(s) || etcdClient(s, file))]).to.deep.equal([]);
  });

  it("connect is imported by the HTTP adapter alone, and only lazily by the daemon", () => {
    const connectUsers = (folder: string) =>
      tsFiles(join(REPO_ROOT, "src", folder))
        .filter((file) => imports(file).some((s) => s.startsWith("@connectrpc/")))
        .map((file) => relative(REPO_ROOT, file));
    expect([...connectUsers("daemon"), ...connectUsers("cli"), ...connectUsers("core"), ...connectUsers("store")]).to.deep.equal([]);
    expect(connectUsers("transport")).to.deep.equal(["src/transport/connect/service.ts"]);
    const server = readFileSync(join(REPO_ROOT, "src/daemon/server.ts"), "utf8");
    expect(server).to.match(/import\("\.\/http\.js"\)/);
    // A type-only import is erased; any other would load connect at start-up.
    expect(server).not.to.match(/^import (?!type ).*"\.\/http\.js";$/m);
  });

  it("no module of src imports itself back through a cycle", () => {
    expect(firstCycle()?.join(" -> ")).to.equal(undefined);
  });
});
