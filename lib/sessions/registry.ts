/**
 * createSessionRegistry(): the app's store wrapped (ended sessions stay ended, every signed-in session indexed by
 * its user), and what the index makes possible: list a user's sessions, end one, end all of them everywhere.
 */
import { invalidOption, PolarLogoutError } from '../errors';
import { createRedisAdapter } from '../redis';
import { isSessionStore } from '../session-guard';
import { integerInRange, isObject, optionalFunction, rejectUnknownKeys, requireObject } from '../validate';
import {
  CONCURRENCY,
  emptySummary,
  endSessions,
  forEachLimited,
  getStored,
  type EndContext,
  type EndSettings,
} from './end-sessions';
import { registerInternals } from './internals';
import { handleOf, normaliseUserId, sessionRef, userKeyOf } from './keys';
import { createMemoryIndex } from './memory-index';
import { createRedisIndex } from './redis-index';
import { createSealer } from './seal';
import { createEndedHandoff } from './ended-handoff';
import { RegisteredStore } from './registered-store';
import type { IndexEntry, SessionIndex } from './session-index';
import type {
  EndSessionsOptions,
  SessionInfo,
  SessionRegistry,
  SessionRegistryOptions,
  SessionsLogoutSummary,
  StoredSession,
} from './types';
import type { TokenPair } from '../types';

const KEYS = [
  'store',
  'redis',
  'userIdOf',
  'tokensOf',
  'prefix',
  'tombstoneTtlMs',
  'notBeforeTtlMs',
  'defaultSessionTtlMs',
  'timeoutMs',
  'onRefused',
  'encryptionKey',
  'outbox',
] as const;
const END_KEYS = ['revoker', 'outbox', 'except', 'timeoutMs', 'signal'] as const;
const DAY = 24 * 60 * 60 * 1000;

const defaultTokensOf = (data: StoredSession): TokenPair => ({
  accessToken: data.accessToken,
  refreshToken: data.refreshToken,
});

function argumentError(message: string): PolarLogoutError {
  return new PolarLogoutError('INVALID_ARGUMENT', `express-polar-logout: ${message}`);
}

function indexFailed(operation: string): PolarLogoutError {
  return new PolarLogoutError(
    'SESSION_INDEX_FAILED',
    `express-polar-logout: the session index did not answer (${operation}). Check its Redis; nothing was ended.`,
  );
}

function userIdArgument(value: unknown): string {
  const userId = normaliseUserId(value);
  if (userId === undefined) throw argumentError('userId must be a non-empty string or a finite number.');
  return userId;
}

function endSettingsOf(options: unknown, allowExcept: boolean): EndSettings & { except: string | undefined } {
  if (!isObject(options) || Array.isArray(options)) {
    throw argumentError('options must be an object with a revoker and/or an outbox, as in { revoker, outbox }.');
  }
  const o = options as EndSessionsOptions & Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!(END_KEYS as readonly string[]).includes(key) || (key === 'except' && !allowExcept)) {
      throw argumentError(
        `\`${key}\` is not an option here. Known: ${END_KEYS.filter((k) => allowExcept || k !== 'except').join(', ')}.`,
      );
    }
  }
  if (o.revoker !== undefined && typeof (o.revoker as { revoke?: unknown }).revoke !== 'function') {
    throw argumentError('`revoker` must be what createPolarRevoker() returns.');
  }
  if (o.outbox !== undefined && typeof (o.outbox as { enqueue?: unknown }).enqueue !== 'function') {
    throw argumentError('`outbox` must be what createRevocationOutbox() returns.');
  }
  if (o.revoker === undefined && o.outbox === undefined) {
    throw argumentError(
      'ending sessions needs `revoker` (createPolarRevoker()) or `outbox` (createRevocationOutbox()), or both: ' +
        "their Polar tokens must be revoked, and Polar's refresh tokens never expire.",
    );
  }
  if (o.except !== undefined && typeof o.except !== 'string')
    throw argumentError('`except` must be a session id from list().');
  if (o.timeoutMs !== undefined) integerInRange(o.timeoutMs, 'timeoutMs', 1, 120_000, 'ms');
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal))
    throw argumentError('`signal` must be an AbortSignal.');
  return { revoker: o.revoker, outbox: o.outbox, timeoutMs: o.timeoutMs, signal: o.signal, except: o.except };
}

async function indexCall<T>(operation: string, call: () => T | Promise<T>): Promise<T> {
  try {
    return await call();
  } catch {
    throw indexFailed(operation);
  }
}

/** Wraps the app's session store with a per-user index, for listing and ending a user's sessions. */
export function createSessionRegistry(options: SessionRegistryOptions): SessionRegistry {
  requireObject(options, 'createSessionRegistry({ store, userIdOf })');
  rejectUnknownKeys(options, KEYS, 'createSessionRegistry');
  if (!isSessionStore(options.store)) {
    throw invalidOption('store', 'must be an express-session store (get, set, destroy; extends session.Store).');
  }
  if (typeof options.userIdOf !== 'function') {
    throw invalidOption('userIdOf', 'is required: a function that returns the user id a stored session belongs to.');
  }
  const tokensOf = optionalFunction(options.tokensOf, 'tokensOf') ?? defaultTokensOf;
  const onRefused = optionalFunction(options.onRefused, 'onRefused');
  const tombstoneTtlMs = integerInRange(options.tombstoneTtlMs ?? 600_000, 'tombstoneTtlMs', 1, 7 * DAY, 'ms');
  const notBeforeTtlMs = integerInRange(options.notBeforeTtlMs ?? 30 * DAY, 'notBeforeTtlMs', 1, 400 * DAY, 'ms');
  const defaultSessionTtlMs = integerInRange(
    options.defaultSessionTtlMs ?? DAY,
    'defaultSessionTtlMs',
    1,
    400 * DAY,
    'ms',
  );
  const timeoutMs = integerInRange(options.timeoutMs ?? 300, 'timeoutMs', 1, 60_000, 'ms');
  if (options.prefix !== undefined && options.redis === undefined) {
    throw invalidOption('prefix', 'names keys in Redis, and there is no `redis`: drop prefix, or pass redis.');
  }

  if (options.encryptionKey !== undefined && options.redis === undefined) {
    throw invalidOption(
      'encryptionKey',
      'seals the session ids kept in Redis, and there is no `redis`: drop it, or pass redis.',
    );
  }
  const sealer = createSealer(options.encryptionKey);

  let index: SessionIndex;
  if (options.redis === undefined) index = createMemoryIndex();
  else {
    const redis = createRedisAdapter(options.redis, {
      feature: 'createSessionRegistry()',
      option: 'redis',
      prefix: options.prefix,
      prefixOption: 'prefix',
    });
    index = createRedisIndex({ redis, timeoutMs, owned: typeof options.redis === 'string', sealer });
  }

  const outbox: unknown = options.outbox;
  if (outbox !== undefined && (!isObject(outbox) || typeof (outbox as { enqueue?: unknown }).enqueue !== 'function')) {
    throw invalidOption('outbox', 'must be the object returned by createRevocationOutbox().');
  }
  const queueEnded = createEndedHandoff(options.outbox, tokensOf);

  const store = new RegisteredStore(options.store, tombstoneTtlMs, index, onRefused, timeoutMs, {
    userIdOf: options.userIdOf,
    defaultSessionTtlMs,
    onEnded: queueEnded,
  });
  const context: EndContext = { store, inner: options.store, index, tokensOf, tombstoneTtlMs };

  async function liveEntries(userId: string): Promise<IndexEntry[]> {
    const entries = await indexCall('list', () => index.entries(userKeyOf(userId), Date.now()));
    const live: IndexEntry[] = [];
    // Each entry is checked against the store: one whose session is gone, or names someone else, is removed.
    await forEachLimited(entries, CONCURRENCY, async (entry) => {
      let data: StoredSession | null;
      try {
        data = await getStored(options.store, entry.sid);
      } catch {
        live.push(entry); // unreadable now: listed, not removed
        return;
      }
      if (data !== null && store.userOf(data) === userId) live.push(entry);
      else await Promise.resolve(index.drop(sessionRef(entry.sid, userId), Date.now())).catch(() => undefined);
    });
    return live;
  }

  async function end(
    userId: string,
    except: string | undefined,
    settings: EndSettings,
  ): Promise<SessionsLogoutSummary> {
    const entries = await indexCall('logoutUser', () =>
      index.mark(userKeyOf(userId), Date.now(), except, notBeforeTtlMs),
    );
    return endSessions(context, userId, entries, settings);
  }

  const registry: SessionRegistry = {
    // A look-alike of express-session's Store on purpose, as guardSessionStore's (see session-guard.ts).
    // eslint-disable-next-line @typescript-eslint/no-unsafe-class-instance-assignment -- see the comment above
    store,
    async list(userId) {
      const live = await liveEntries(userIdArgument(userId));
      return live
        .sort((a, b) => b.lastSeenAt - a.lastSeenAt)
        .map(({ handle, createdAt, lastSeenAt, userAgent }): SessionInfo => ({
          id: handle,
          createdAt: new Date(createdAt),
          lastSeenAt: new Date(lastSeenAt),
          userAgent,
        }));
    },
    idOf(req) {
      const sid = isObject(req) ? req.sessionID : undefined;
      return typeof sid === 'string' && sid !== '' ? handleOf(sid) : undefined;
    },
    async logoutUser(userId, endOptions) {
      const id = userIdArgument(userId);
      const { except, ...settings } = endSettingsOf(endOptions, true);
      return end(id, except, settings);
    },
    async logoutSession(userId, id, endOptions) {
      const user = userIdArgument(userId);
      if (typeof id !== 'string' || id === '') throw argumentError('id must be a session id from list().');
      const settings = endSettingsOf(endOptions, false);
      const entries = await indexCall('logoutSession', () => index.entries(userKeyOf(user), Date.now()));
      const entry = entries.find((e) => e.handle === id);
      return entry ? endSessions(context, user, [entry], settings) : emptySummary();
    },
    close: () => index.close(),
  };
  registerInternals(registry, {
    store,
    userOf: (data) => store.userOf(data),
    end,
  });
  return registry;
}
