/**
 * The physical limit of this stack: a bare grpc-js server, same grpc-js, the
 * daemon's default server options (serverOptions(DEFAULT_CONFIG)), the
 * generated service definition with its generated (de)serializers (the
 * daemon replaces them with its own, src/transport/codecs.ts), whose
 * handlers do nothing: each answers an empty response at once. No registry,
 * no validation, no logging, no metrics. The benchmark drives it with the
 * same load generator as the daemon, in the same run.
 *
 * Run as its own process, like the daemon:
 *   node --conditions=source --import tsx bench/noop-server.ts [--listen 127.0.0.1:0]
 * It prints "listening on <address>" and stops on SIGTERM.
 */
import * as grpc from "@grpc/grpc-js";

import { DEFAULT_CONFIG } from "../src/daemon/config.js";
import { serverOptions } from "../src/daemon/server.js";
import { SessionRegistryService } from "../src/gen/sessionregistry/v1/session_registry.js";

const listenAt = process.argv.indexOf("--listen");
const listen = listenAt >= 0 ? process.argv[listenAt + 1]! : "127.0.0.1:0";

const server = new grpc.Server(serverOptions(DEFAULT_CONFIG));
const noop = (_call: unknown, callback: grpc.sendUnaryData<object>) => callback(null, {});
const unimplemented = (call: grpc.ServerWritableStream<unknown, unknown>) =>
  call.destroy({ code: grpc.status.UNIMPLEMENTED, details: "the no-op server only answers unary calls" } as grpc.ServiceError);
server.addService(SessionRegistryService, {
  createTable: noop,
  getTable: noop,
  listTables: noop,
  deleteTable: noop,
  register: noop,
  lookup: noop,
  list: noop,
  update: noop,
  remove: noop,
  keepAlive: noop,
  getServerInfo: noop,
  watch: unimplemented,
  watchTables: unimplemented,
});

server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
  if (err !== null) {
    console.error(`cannot listen on ${listen}: ${err.message}`);
    process.exit(1);
  }
  const host = listen.slice(0, listen.lastIndexOf(":"));
  console.log(`listening on ${host}:${port}`);
});

process.once("SIGTERM", () => server.tryShutdown(() => process.exit(0)));
