/**
 * The docs say what the code does: every flag `session-registry serve
 * --help` prints is on docs/configuration.md and every flag there exists;
 * every flag of the CLI's commands is on docs/cli.md; every ErrorInfo
 * reason is on docs/api.md with the proto's code and metadata; every
 * relative link and #anchor resolves; docs/README.md indexes every page.
 */
import { existsSync } from "node:fs";
import { dirname, join, normalize } from "node:path";
import { expect } from "chai";

import { Reason } from "../../src/core/errors.js";
import { REPO_ROOT, runCli } from "../cli/cli-process.js";
import { anchors, docsFiles, links, readDoc, tableRows } from "../helpers/markdown.js";
import { metadataKeys, protoErrorTable } from "../helpers/proto-errors.js";

/** A flag of a --help text: its names (`--listen`; `-h`, `--help`) and its text, continuation lines included. */
interface HelpFlag {
  names: string[];
  text: string;
}

/** The flags of a --help text: lines `  --name ...` or `  -x, --name ...`, each with the more indented lines after it. */
function helpFlags(help: string): HelpFlag[] {
  const out: HelpFlag[] = [];
  let current: HelpFlag | undefined;
  for (const line of help.split("\n")) {
    const m = /^ {2}(?:(-[A-Za-z]), )?(--[a-z0-9][a-z0-9-]*)(.*)$/.exec(line);
    if (m !== null) out.push((current = { names: m[1] === undefined ? [m[2]!] : [m[1], m[2]!], text: m[3]! }));
    else if (current !== undefined && /^ {3,}\S/.test(line)) current.text += ` ${line.trim()}`;
    else current = undefined;
  }
  return out;
}

/** The flag names in a table's first cell: "`--listen HOST:PORT`", "`-h`, `--help`". */
function cellFlags(cell: string): string[] {
  return [...cell.matchAll(/`(--?[A-Za-z][\w-]*)[^`]*`/g)].map((m) => m[1]!);
}

function envVar(text: string): string | undefined {
  return /\b(SESSION_REGISTRY_[A-Z_]+)/.exec(text)?.[1];
}

async function help(args: string[]): Promise<string> {
  const r = await runCli(args);
  expect(r.code, `${args.join(" ")}: ${r.stderr}`).to.equal(0);
  return r.stdout;
}

const FLAG_TABLE = ["flag", "environment variable", "default", "meaning"];

describe("docs", function () {
  this.timeout(60_000);

  describe("docs/configuration.md", () => {
    const rows = tableRows(readDoc("docs/configuration.md"), FLAG_TABLE);
    let flags: HelpFlag[];
    before(async () => {
      flags = helpFlags(await help(["serve", "--help"]));
    });

    it("has a row for every flag `serve --help` prints, and no other", () => {
      expect(flags.length, "flags parsed from serve --help").to.be.greaterThan(30);
      const documented = rows.flatMap((r) => cellFlags(r[0]!)).sort();
      expect(documented, "the flag table of docs/configuration.md vs serve --help").to.deep.equal(flags.flatMap((f) => f.names).sort());
    });

    it("gives each flag the environment variable --help names", () => {
      const byFlag = new Map(flags.map((f) => [f.names.at(-1)!, envVar(f.text)]));
      for (const row of rows) {
        for (const flag of cellFlags(row[0]!).filter((f) => f.startsWith("--"))) {
          expect(envVar(row[1]!), `${flag}'s variable`).to.equal(byFlag.get(flag));
        }
      }
    });
  });

  describe("docs/cli.md", () => {
    const text = readDoc("docs/cli.md");
    const rows = tableRows(text, FLAG_TABLE);
    let commands: string[];
    const flagsOf = new Map<string, HelpFlag[]>();
    before(async () => {
      const top = await help(["--help"]);
      const list = top.slice(top.indexOf("Commands:\n"), top.indexOf("\n\n", top.indexOf("Commands:\n")));
      commands = [...list.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!);
      // serve's flags are the configuration page's; help and completion take words, not flags.
      const clients = commands.filter((c) => !["serve", "help", "completion"].includes(c));
      const helps = await Promise.all(clients.map((c) => help([c, "--help"])));
      clients.forEach((c, i) => flagsOf.set(c, helpFlags(helps[i]!)));
    });

    it("shows every command", () => {
      expect(commands).to.include.members(["serve", "register", "watch", "completion"]);
      for (const c of commands) expect(text, `session-registry ${c}`).to.include(`session-registry ${c}`);
    });

    it("names every flag of every command", () => {
      for (const [command, flags] of flagsOf) {
        for (const name of flags.flatMap((f) => f.names)) {
          expect(new RegExp(`(?<![\\w-])${name}(?![\\w-])`).test(text), `${command}'s ${name} on docs/cli.md`).to.equal(true);
        }
      }
    });

    it("has a row for every flag all commands share, and only for flags that exist", () => {
      const documented = rows.flatMap((r) => cellFlags(r[0]!));
      const all = [...flagsOf.values()].map((flags) => flags.flatMap((f) => f.names));
      const shared = all[0]!.filter((name) => all.every((names) => names.includes(name)));
      expect(shared, "flags every client command takes").to.include.members(["--addr", "--token", "--timeout", "-w"]);
      expect(documented, "the shared-flag table of docs/cli.md").to.include.members(shared);
      for (const flag of documented) expect(all.flat(), `${flag} in some command's --help`).to.include(flag);
      for (const row of rows) {
        const flag = cellFlags(row[0]!)[0]!;
        const inHelp = [...flagsOf.values()].flat().find((f) => f.names.includes(flag))!;
        expect(envVar(row[1]!), `${flag}'s variable`).to.equal(envVar(inHelp.text));
      }
    });
  });

  describe("docs/api.md", () => {
    const rows = tableRows(readDoc("docs/api.md"), ["gRPC code", "ErrorInfo reason", "when", "ErrorInfo metadata"]);
    const unquote = (cell: string) => cell.replace(/^`|`$/g, "");

    it("has a row for every ErrorInfo reason, and no other", () => {
      expect(rows.map((r) => unquote(r[1]!)).sort(), "the error table of docs/api.md vs src/core/errors.ts").to.deep.equal(
        Object.values(Reason).sort(),
      );
    });

    it("gives each reason the proto's code and metadata keys", () => {
      const proto = new Map(protoErrorTable().map((e) => [e.reason, e]));
      for (const row of rows) {
        const reason = unquote(row[1]!);
        expect(unquote(row[0]!), `${reason}'s code`).to.equal(proto.get(reason)?.code);
        expect(metadataKeys(row[3]!), `${reason}'s metadata`).to.deep.equal(proto.get(reason)?.metadata);
      }
    });
  });

  describe("links", () => {
    const files = [...docsFiles(), "BENCHMARKS.md", "clients/typescript/README.md", "clients/python/README.md", "clients/go/README.md"];

    it("resolve: every relative link names a file of the repository, and every #anchor a heading of its page", () => {
      const broken: string[] = [];
      let checked = 0;
      for (const file of files) {
        for (const { line, target } of links(readDoc(file))) {
          if (/^[a-z][a-z0-9+.-]*:/i.test(target)) continue; // https:, mailto:
          checked++;
          const [path, anchor] = target.split("#", 2) as [string, string | undefined];
          const resolved = path === "" ? file : normalize(join(dirname(file), decodeURIComponent(path)));
          if (resolved.startsWith("..") || !existsSync(join(REPO_ROOT, resolved))) {
            broken.push(`${file}:${line}: ${target} (no ${resolved})`);
          } else if (anchor !== undefined && resolved.endsWith(".md") && !anchors(readDoc(resolved)).has(anchor)) {
            broken.push(`${file}:${line}: ${target} (no heading #${anchor} in ${resolved})`);
          }
        }
      }
      expect(checked, "relative links checked").to.be.greaterThan(100);
      expect(broken, "broken links").to.deep.equal([]);
    });

    it("docs/README.md indexes every page of docs/", () => {
      const index = new Set(links(readDoc("docs/README.md")).map((l) => normalize(join("docs", l.target.split("#")[0]!))));
      const pages = docsFiles().filter((f) => f.startsWith("docs/") && f !== "docs/README.md");
      expect(pages.length).to.be.greaterThan(5);
      for (const page of pages) expect([...index], `docs/README.md links ${page}`).to.include(page);
    });
  });
});
