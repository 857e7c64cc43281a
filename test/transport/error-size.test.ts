/**
 * Errors stay small whatever the request. A request may break one rule
 * thousands of times (every update_mask path, every metadata entry) or carry
 * huge bad strings; its error must not echo all of it. The status travels in
 * trailers (grpc-message, grpc-status-details-bin), and clients refuse
 * trailers past their metadata limit (8 KiB by default in grpcio and
 * grpc-js) with an error of their own, so the client would never see the
 * INVALID_ARGUMENT. Requests are encoded by hand with the daemon's own
 * message types and sent to a real daemon; sizes are read off the wire.
 */
import { expect } from "chai";
import { Client, credentials, status } from "@grpc/grpc-js";

import { ERROR_REPORT } from "../../src/core/errors.js";
import { LIMITS } from "../../src/core/validation.js";
import { LookupRequest, RegisterRequest, Session, UpdateRequest } from "../../src/gen/sessionregistry/v1/session_registry.js";
import { startTestDaemon, uniqueName, type TestDaemon } from "../helpers/daemon.js";
import { h2Call } from "../helpers/h2.js";
import { callBytes as rawCallBytes, wireDetails } from "../helpers/raw.js";

const SERVICE = "/sessionregistry.v1.SessionRegistry";
/** The bound on an error's status fields this suite holds the daemon to: half of clients' 8 KiB default. */
const MAX_STATUS_BYTES = 4096;

const EMOJI = "\u{1F600}"; // four UTF-8 bytes, percent-encoded to twelve in grpc-message

function session(fields: Partial<Session>): Session {
  return { ...Session.fromPartial({}), ...fields };
}

function update(fields: Partial<UpdateRequest>): Uint8Array {
  return UpdateRequest.encode({ ...UpdateRequest.fromPartial({}), session: session({ id: "s", name: "n" }), ...fields }).finish();
}

function register(fields: Partial<RegisterRequest>): Uint8Array {
  return RegisterRequest.encode({ requestId: "", table: "", session: session({ projectPath: "/p" }), ...fields }).finish();
}

/** 64 metadata entries, each breaking both the key and the value rules with long non-ASCII text. */
function hostileMetadata(): Map<string, string> {
  const entries = new Map<string, string>();
  for (let i = 0; i < LIMITS.metadataMaxEntries; i++) {
    entries.set(`${EMOJI.repeat(40)}\n${i}`, `${EMOJI.repeat(1200)}\u0000`);
  }
  return entries;
}

/** The worst requests this suite could think of: each must get INVALID_ARGUMENT within MAX_STATUS_BYTES. */
const WORST: [string, string, () => Uint8Array][] = [
  [
    "an update_mask of 40,000 bad paths (880 KB)",
    "Update",
    () => update({ updateMask: Array.from({ length: 40_000 }, (_, i) => `no.such.field.${i}`.padEnd(20, "x")) }),
  ],
  [
    "an update_mask of 8 long non-ASCII paths",
    "Update",
    () => update({ updateMask: Array.from({ length: 8 }, () => EMOJI.repeat(20_000)) }),
  ],
  [
    "64 metadata entries breaking every metadata rule",
    "Register",
    () => register({ session: session({ projectPath: "/p", metadata: hostileMetadata() }) }),
  ],
  [
    "long bad strings in every field",
    "Register",
    () =>
      register({
        requestId: EMOJI.repeat(10_000),
        table: `${EMOJI.repeat(10_000)} `,
        session: session({
          id: EMOJI.repeat(10_000),
          name: `\n${EMOJI.repeat(10_000)}`,
          projectPath: `${EMOJI.repeat(10_000)}/..`,
          metadata: hostileMetadata(),
          ttl: { seconds: -(2n ** 62n), nanos: -999_999_999 },
        }),
      }),
  ],
  [
    "long bad strings in every field of an Update",
    "Update",
    () =>
      update({
        requestId: EMOJI.repeat(10_000),
        table: EMOJI.repeat(10_000),
        tableUid: EMOJI.repeat(10_000),
        session: session({
          id: EMOJI.repeat(10_000),
          name: `\u0007${EMOJI.repeat(60)}`,
          projectPath: `/a\u202E${EMOJI.repeat(1000)}`,
          metadata: hostileMetadata(),
        }),
        updateMask: ["name", "project_path", "metadata", "ttl"],
        expectedRevision: 2n ** 64n - 1n,
      }),
  ],
];

describe("error size", () => {
  let d: TestDaemon;
  let raw: Client;

  before(async () => {
    // Far past the default request size: whatever an operator allows, errors stay small.
    d = await startTestDaemon({ config: { maxReceiveMessageBytes: 4 * 1024 * 1024 } });
    raw = new Client(d.address, credentials.createInsecure());
  });
  after(async () => {
    raw.close();
    await d.stop();
  });

  const callBytes = (method: string, bytes: Uint8Array) => rawCallBytes(raw, method, bytes);

  for (const [label, method, bytes] of WORST) {
    it(`answers ${label} with INVALID_ARGUMENT in at most ${MAX_STATUS_BYTES} bytes of status`, async () => {
      const request = bytes();
      const wire = await h2Call(d.address, `${SERVICE}/${method}`, request);
      expect(wire.code).to.equal(status.INVALID_ARGUMENT);
      expect(wire.statusBytes, `status of ${wire.statusBytes} bytes for a request of ${request.byteLength}`).to.be.at.most(
        MAX_STATUS_BYTES,
      );

      // A client with default limits sees the daemon's own error, details and all.
      const err = await callBytes(method, request);
      expect(err.code).to.equal(status.INVALID_ARGUMENT);
      const details = wireDetails(err.metadata);
      expect(details.status.message).to.equal(err.details);
      expect(details.errorInfos.map((e) => e.reason)).to.deep.equal(["INVALID_ARGUMENT"]);
      const violations = details.badRequests.flatMap((b) => b.fieldViolations);
      expect(violations.length).to.be.within(1, ERROR_REPORT.maxViolations + 1);
    });
  }

  it("refuses an update_mask of more than 8 paths as a whole, without an error per path", async () => {
    const err = await callBytes("Update", update({ updateMask: Array.from({ length: 40_000 }, (_, i) => `bogus${i}`) }));
    expect(err.code).to.equal(status.INVALID_ARGUMENT);
    expect(err.details).to.equal(
      "invalid request: update_mask: must name at most 8 paths (updatable fields are name, project_path, metadata, ttl), got 40000",
    );
    const violations = wireDetails(err.metadata).badRequests.flatMap((b) => b.fieldViolations);
    expect(violations.map((v) => v.field)).to.deep.equal(["update_mask"]);
  });

  it("takes an update_mask of 8 paths", async () => {
    const client = d.client();
    const table = uniqueName("mask");
    await client.createTable({ table });
    const s = await client.register({ projectPath: "/mask/eight" }, { table });
    const mask = ["name", "name", "ttl", "ttl", "name", "name", "name", "name"];
    expect(mask).to.have.length(LIMITS.updateMaskMaxPaths);
    const res = await new Promise<unknown>((resolve, reject) =>
      d.rawClient().client.update(
        {
          requestId: "",
          table,
          session: { ...session({ id: s.id, name: "renamed" }), revision: 0 } as never,
          updateMask: mask,
          expectedRevision: 0,
          tableUid: "",
        },
        (err, r) => (err ? reject(err) : resolve(r)),
      ),
    );
    expect(res).to.have.nested.property("session.name", "renamed");
  });

  it(`lists at most ${ERROR_REPORT.maxViolations} violations and counts the rest`, async () => {
    // 64 entries with a value too long each: 64 violations of session.metadata, after one of session.id, and one of their total.
    const metadata = new Map(Array.from({ length: 64 }, (_, i) => [`k${i}`, "v".repeat(LIMITS.metadataValueMaxBytes + 1)]));
    const err = await callBytes("Register", register({ session: session({ id: "a b", projectPath: "/p", metadata }) }));
    expect(err.code).to.equal(status.INVALID_ARGUMENT);
    const violations = wireDetails(err.metadata).badRequests.flatMap((b) => b.fieldViolations);
    expect(violations).to.have.length(ERROR_REPORT.maxViolations + 1);
    expect(violations[0]!.field).to.equal("session.id");
    expect(violations[1]).to.deep.include({
      field: "session.metadata",
      description: 'value of key "k0" is 4097 bytes; values must be at most 4096 bytes',
    });
    const last = violations[ERROR_REPORT.maxViolations]!;
    expect(last.field).to.equal("session.metadata");
    expect(last.description).to.equal(`and ${66 - ERROR_REPORT.maxViolations} more violation(s), starting with this field, not listed`);
    // The message lists what fits its own budget and counts the rest.
    expect(err.details).to.match(
      /^invalid request: session\.id: must contain only \[A-Za-z0-9._:-\], got "a b"; session\.metadata: value of key "k0" .*; and \d+ more$/,
    );
    expect(Buffer.byteLength(err.details)).to.be.at.most(ERROR_REPORT.maxMessageBytes + 64);
  });

  it(`lists at most ${ERROR_REPORT.maxViolationBytes} bytes of violations, however few`, async () => {
    // Each description quotes a key of 31 four-byte code points: a few such violations fill the budget.
    const metadata = new Map(
      Array.from({ length: 64 }, (_, i) => [`${EMOJI.repeat(31)}${i}`, "v".repeat(LIMITS.metadataValueMaxBytes + 1)]),
    );
    const err = await callBytes("Register", register({ session: session({ projectPath: "/p", metadata }) }));
    const violations = wireDetails(err.metadata).badRequests.flatMap((b) => b.fieldViolations);
    const listed = violations.slice(0, -1);
    expect(listed.length).to.be.below(ERROR_REPORT.maxViolations);
    const bytes = listed.reduce((n, v) => n + Buffer.byteLength(v.field) + Buffer.byteLength(v.description), 0);
    expect(bytes).to.be.at.most(ERROR_REPORT.maxViolationBytes);
    // 64 values too long, and their total too large.
    expect(violations.at(-1)!.description).to.equal(`and ${65 - listed.length} more violation(s), starting with this field, not listed`);
  });

  it("quotes at most 40 code points of a looked-up value in the message of SESSION_NOT_FOUND", async () => {
    const path = `/${EMOJI.repeat(1023)}`; // 4093 bytes: a valid path
    const bytes = LookupRequest.encode({ table: "", key: { $case: "projectPath", value: path } }).finish();
    const wire = await h2Call(d.address, `${SERVICE}/Lookup`, bytes);
    expect(wire.code).to.equal(status.NOT_FOUND);
    expect(wire.message).to.equal(`no session with project_path "/${EMOJI.repeat(39)}…" in table "default"`);
    // ErrorInfo keeps the whole path (clients read it there): a valid path is at most 4096 bytes.
    expect(wire.statusBytes).to.be.at.most(7 * 1024);
  });
});
