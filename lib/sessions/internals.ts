/**
 * What polarLogout needs of a registry beyond its public face, kept in a WeakMap keyed by the registry object. A
 * module without runtime imports, so that the options (which check `sessions`) do not pull the registry into their graph.
 */
import type { RevocationQueue } from '../types';
import type { SessionRevoker, SessionsLogoutSummary } from './types';

/** How ending sessions revokes and queues their tokens (the handler's own revoker and outbox, or logoutUser's). */
export interface EndSettings {
  revoker: SessionRevoker | undefined;
  outbox: RevocationQueue | undefined;
  timeoutMs: number | undefined;
  signal: AbortSignal | undefined;
}

export interface RegistryInternals {
  /** The wrapped store (express-session must be given it). */
  store: object;
  /** The user a session's data names, or undefined. */
  userOf(data: unknown): string | undefined;
  /** Sets the user's "not before" mark (sparing `except`, a handle) and ends every other session. */
  end(userId: string, except: string | undefined, settings: EndSettings): Promise<SessionsLogoutSummary>;
}

const internals = new WeakMap<object, RegistryInternals>();

export function registerInternals(registry: object, value: RegistryInternals): void {
  internals.set(registry, value);
}

/** The internals of a registry createSessionRegistry() made, or undefined for anything else. */
export function registryInternals(value: unknown): RegistryInternals | undefined {
  return typeof value === 'object' && value !== null ? internals.get(value) : undefined;
}
