/**
 * The page's link to the daemon: a Connect client (binary) on the origin
 * that served the page, with the bearer token kept in this tab's session
 * storage.
 */
import { createClient, type Client, type Interceptor } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-web";

import { SessionRegistry } from "../gen/sessionregistry/v1/session_registry_pb.js";

export type Registry = Client<typeof SessionRegistry>;

const TOKEN_KEY = "session-registry.token";

/** The token this tab holds (never localStorage: it goes with the tab). */
export const token = {
  get(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(value: string): void {
    sessionStorage.setItem(TOKEN_KEY, value);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

const bearer: Interceptor = (next) => (req) => {
  const t = token.get();
  if (t !== null) req.header.set("authorization", `Bearer ${t}`);
  return next(req);
};

export function registryClient(baseUrl: string): Registry {
  return createClient(SessionRegistry, createConnectTransport({ baseUrl, useBinaryFormat: true, interceptors: [bearer] }));
}
