/**
 * The arithmetic of a session write that every store does alike: when a ttl
 * makes a session expire, and what an Update's patch makes of a session.
 * A store adds only what is its own: the revision, the clock reading, and
 * how it keeps the deadline (a timer, an etcd lease).
 */
import { EMPTY_METADATA, type Duration, type Session, type SessionPatch } from "./model.js";
import { deriveName, ttlMillis } from "./validation.js";

/** When a session with `ttl`, written or kept alive at `now` (epoch ms), expires; undefined without a ttl. */
export function expiresAt(ttl: Duration, now: number): number;
export function expiresAt(ttl: Duration | undefined, now: number): number | undefined;
export function expiresAt(ttl: Duration | undefined, now: number): number | undefined {
  return ttl === undefined ? undefined : now + ttlMillis(ttl);
}

/**
 * The session an Update with `patch` makes of `prev` at `now`, written at
 * `revision`. A field the patch leaves undefined keeps its value; `name:
 * null` derives the name from the resulting project path (a new path alone
 * keeps the name); `ttl: null` clears the ttl and the expire time. A new ttl
 * starts a new deadline from `now`; otherwise the current one stands, a
 * keep-alive's included.
 */
export function updatedSession(prev: Session, patch: SessionPatch, now: number, revision: number): Session {
  const projectPath = patch.projectPath ?? prev.projectPath;
  const ttl = patch.ttl === undefined ? prev.ttl : (patch.ttl ?? undefined);
  return {
    ...prev,
    name: patch.name === undefined ? prev.name : (patch.name ?? deriveName(projectPath)),
    projectPath,
    metadata: patch.metadata === undefined ? prev.metadata : patch.metadata.size === 0 ? EMPTY_METADATA : patch.metadata,
    updateTime: new Date(now),
    revision,
    ttl,
    expireTime: ttl === undefined ? undefined : patch.ttl === undefined ? prev.expireTime : new Date(now + ttlMillis(ttl)),
  };
}
