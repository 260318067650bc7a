/**
 * The names the registry gives sessions and users. None reveals what it names: a session's handle and a user's
 * key are hashes, so the index (in Redis, in list()'s answers) holds no user id and hands out no session id.
 */
import { tombstoneKey } from '../session-guard';
import { sha256 } from '../util/sha256';

/** The opaque id list() gives a session: 128 bits of SHA-256 over a domain tag and the id. */
export function handleOf(sessionId: string): string {
  return sha256(`express-polar-logout:handle\0${sessionId}`, 'base64url').slice(0, 22);
}

/** The key of a user's index: a hash, so that user ids (often e-mail addresses) never reach Redis. */
export function userKeyOf(userId: string): string {
  return sha256(`express-polar-logout:user\0${userId}`, 'base64url').slice(0, 22);
}

/** A user id as userIdOf returned it, or undefined for an anonymous session. */
export function normaliseUserId(value: unknown): string | undefined {
  if (typeof value === 'string') return value === '' ? undefined : value;
  if (typeof value === 'number' && Number.isFinite(value)) return String(value);
  return undefined;
}

/** What the index needs to know of one stored session. */
export interface SessionRef {
  /** The session id (kept in the index: ending a session means finding it in the store). */
  sid: string;
  /** Its tombstone key (the guard's). */
  tomb: string;
  /** Its handle. */
  handle: string;
  /** Its user's key. */
  user: string;
}

export function sessionRef(sid: string, userId: string, tomb = tombstoneKey(sid)): SessionRef {
  return { sid, tomb, handle: handleOf(sid), user: userKeyOf(userId) };
}
