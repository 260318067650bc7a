/**
 * One Redis adapter for everything this package keeps in Redis (the outbox, tombstones, and later the rate
 * budget and the per-user session index). Features ask it for what they need (a command with a time bound,
 * a script run on keys of one slot, a connection for BullMQ) and never look inside the client themselves.
 *
 * Internal interface (stable for the features built on it):
 *   command(args, { key, readonly, timeoutMs })   one command; `key` routes it on a cluster
 *   eval(script, keys, args, { timeoutMs })        EVALSHA, then EVAL on NOSCRIPT; keys must share a hash tag
 *   get / setPx / exists                           the simple commands tombstones and the budget need
 *   bullmqConnection('producer' | 'worker')        what to give BullMQ as `connection`
 *   duplicate()                                    a new connection of the same kind (for blocking commands)
 *   key(name)                                      `${prefix}:${name}`, in the prefix's hash slot
 *   reportUnreachable(reason)                      once per process: warnOnce with host and port, never a password
 *   close()                                        closes the connections it opened; the app's own client stays open
 */
import { createHash } from 'node:crypto';
import createDebug from 'debug';
import { warnOnce } from '../warnings';
import { clientReady, parseRedis, type ParsedRedis, type RawClient, type RedisLibrary } from './client';
import { resolvePrefix } from './keys';
import { hasPeer, loadPeer, pick, requirePeers } from './peers';

const debug = createDebug('express-polar-logout:redis');

/** Default time bound of one command: a dead Redis never holds a request longer. */
export const COMMAND_TIMEOUT_MS = 1000;
export const UNREACHABLE_WARNING = 'EPL_REDIS_UNREACHABLE';

export interface CommandOptions {
  /** A key of the command: routes it on a cluster. */
  key?: string;
  /** The command only reads (a cluster may send it to a replica; node-redis cluster needs to know). */
  readonly?: boolean;
  /** Bound in ms; the promise rejects with a RedisUnavailableError after it. Default 1000. */
  timeoutMs?: number;
}

/** A command that failed because Redis was away or slow; the message holds no argument, key or address detail. */
export class RedisUnavailableError extends Error {
  constructor(readonly reason: string) {
    super(`Redis did not answer (${reason})`);
    this.name = 'RedisUnavailableError';
  }
}

export interface RedisAdapter {
  readonly library: RedisLibrary;
  readonly cluster: boolean;
  /** host:port (or a list), for messages. */
  readonly address: string;
  readonly prefix: string;
  key(name: string): string;
  command(args: readonly string[], options?: CommandOptions): Promise<unknown>;
  eval(script: string, keys: readonly string[], args: readonly string[], options?: CommandOptions): Promise<unknown>;
  get(key: string, options?: CommandOptions): Promise<string | null>;
  setPx(key: string, value: string, ttlMs: number, options?: CommandOptions): Promise<void>;
  exists(key: string, options?: CommandOptions): Promise<boolean>;
  /** The client itself (the app's, or the one opened for a URL), connected or connecting. */
  isReady(): boolean;
  bullmqConnection(role: 'producer' | 'worker'): RawClient;
  duplicate(): RawClient;
  reportUnreachable(reason: string): void;
  close(): Promise<void>;
}

export interface RedisAdapterOptions {
  /** The option name used in messages (`redis`, `client`). */
  option?: string;
  /** Key prefix; must hold a hash tag on a cluster. Default `{polar-logout}`. */
  prefix?: unknown;
  prefixOption?: string;
  /** Which feature needs it, for the install message (`the outbox`). */
  feature: string;
  /** Peers the feature needs whatever the client (e.g. bullmq). */
  peers?: ReadonlyArray<'bullmq'>;
  /** Accept ioredis connection options (the outbox does, for compatibility). */
  acceptOptions?: boolean;
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
  'EPIPE',
]);
const CONNECTION_NAMES = new Set([
  'ClientClosedError',
  'ClientOfflineError',
  'SocketClosedUnexpectedlyError',
  'ConnectionTimeoutError',
  'MaxRetriesPerRequestError',
  'ClusterAllFailedError',
]);

/** A short reason when `err` says Redis cannot be reached, else undefined. Never the error's message. */
export function connectionFailure(err: unknown): string | undefined {
  if (err instanceof RedisUnavailableError) return err.reason;
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string' && CONNECTION_CODES.has(code)) return code;
  if (CONNECTION_NAMES.has(err.name)) return err.name;
  if (/Connection is closed|isn't writeable|Failed to refresh slots cache|None of startup nodes/.test(err.message)) {
    return 'connection closed';
  }
  // AggregateError from dual-stack connects (localhost): look at the first cause.
  const errors = (err as { errors?: unknown }).errors;
  return Array.isArray(errors) ? connectionFailure(errors[0]) : undefined;
}

function sha1(script: string): string {
  return createHash('sha1').update(script).digest('hex');
}

function withBound<T>(promise: Promise<T>, ms: number): Promise<T> {
  // One promise and one timer (no race, no finally): this runs on every signed-in request with a registry.
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RedisUnavailableError(`no answer within ${ms} ms`)), ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (err: unknown) => {
        clearTimeout(timer);
        // The command's own rejection, passed on as it is: command() turns it into an error of ours.
        // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
        reject(err);
      },
    );
  });
}

type Opened = { library: RedisLibrary; client: RawClient };

/**
 * Settles when an ioredis client's first connection attempt ends: ready, or closed (refused, reset). Without an
 * offline queue, ioredis refuses commands until then, which would read as "Redis is unreachable": the first
 * logout after start-up used this process's own budget and warned that a healthy Redis was away.
 */
function firstAttempt(c: RawClient): Promise<void> | undefined {
  if (c.status === 'ready') return undefined;
  return new Promise((resolve) => {
    const events = ['ready', 'close', 'end'];
    const done = (): void => {
      for (const event of events) (c.removeListener as (e: string, l: () => void) => void).call(c, event, done);
      resolve();
    };
    for (const event of events) c.on(event, done);
  });
}

/** Opens a client for a URL or ioredis options: ioredis when installed, else node-redis. */
function openOwn(
  parsed: Extract<ParsedRedis, { kind: 'url' | 'options' }>,
  overrides: Record<string, unknown>,
): Opened {
  if (parsed.kind === 'options' || hasPeer('ioredis')) {
    const mod = loadPeer('ioredis');
    const Redis = (pick(mod, 'Redis') ?? (mod as { default?: unknown }).default ?? mod) as new (
      ...args: unknown[]
    ) => RawClient;
    const client =
      parsed.kind === 'url' ? new Redis(parsed.url, overrides) : new Redis({ ...parsed.options, ...overrides });
    return { library: 'ioredis', client };
  }
  const createClient = pick(loadPeer('redis'), 'createClient') as (options: unknown) => RawClient;
  const client = createClient({ url: parsed.url });
  void (client.connect as () => Promise<unknown>).call(client).catch(() => undefined);
  return { library: 'node-redis', client };
}

export function createRedisAdapter(input: unknown, options: RedisAdapterOptions): RedisAdapter {
  const option = options.option ?? 'redis';
  const parsed = parseRedis(input, option, options.acceptOptions ?? false);
  const peers: Array<'bullmq' | 'ioredis' | 'redis'> = [...(options.peers ?? [])];
  if (parsed.kind === 'options') peers.push('ioredis');
  if (parsed.kind === 'url' && !hasPeer('ioredis') && !hasPeer('redis')) peers.push('ioredis');
  // BullMQ 6 drives node-redis single clients but not node-redis clusters: its connections there are ioredis.
  const bullmqOverIoredis =
    parsed.kind === 'client' && parsed.library === 'node-redis' && parsed.cluster && peers.includes('bullmq');
  if (bullmqOverIoredis) peers.push('ioredis');
  requirePeers(option, peers, options.feature);

  const cluster = parsed.kind === 'client' && parsed.cluster;
  const prefix = resolvePrefix(options.prefix, options.prefixOption ?? 'prefix', cluster);
  const address = parsed.address;
  const owned: Opened[] = [];
  const userClient: Opened | undefined =
    parsed.kind === 'client' ? { library: parsed.library, client: parsed.client } : undefined;
  const library: RedisLibrary =
    userClient?.library ?? (parsed.kind === 'options' || hasPeer('ioredis') ? 'ioredis' : 'node-redis');

  function reportUnreachable(reason: string): void {
    warnOnce(
      UNREACHABLE_WARNING,
      `express-polar-logout: Redis at ${address} is not reachable (${reason}). Queued revocations and tombstones ` +
        'wait for it; check the `redis` URL or client, and that Redis is running.',
    );
  }

  /** Our own connection: its errors are reported once here, never thrown at the app. */
  function own(overrides: Record<string, unknown>, base?: Opened): RawClient {
    let opened: Opened;
    if (base) {
      opened = { library: base.library, client: duplicateOf(base, overrides) };
    } else {
      opened = openOwn(parsed as Extract<ParsedRedis, { kind: 'url' | 'options' }>, overrides);
    }
    opened.client.on('error', (err: unknown) => {
      const reason = connectionFailure(err);
      if (reason) reportUnreachable(reason);
      else debug('redis connection error: %s', err instanceof Error ? err.name : typeof err);
    });
    owned.push(opened);
    return opened.client;
  }

  function duplicateOf(base: Opened, overrides: Record<string, unknown>): RawClient {
    const c = base.client;
    if (base.library === 'node-redis') {
      const dup = c.duplicate();
      void (dup.connect as () => Promise<unknown>).call(dup).catch(() => undefined);
      return dup;
    }
    if (c.isCluster === true) {
      const clusterOptions = (c.options ?? {}) as Record<string, unknown>;
      const redisOptions = (clusterOptions.redisOptions ?? {}) as Record<string, unknown>;
      const { enableOfflineQueue, ...perNode } = overrides;
      return c.duplicate([], {
        lazyConnect: false,
        // ioredis's cluster ready check (CLUSTER INFO) fails while a master is down; it then reconnects on its own
        // but leaves the promise of the connect() that ran the check pending for ever. BullMQ awaits that promise
        // when it renews its blocking connection: after a node restart the worker stopped for good (reproduced
        // with SIGKILL of the slot's master). Commands sent meanwhile meet CLUSTERDOWN and are retried instead.
        enableReadyCheck: false,
        ...(enableOfflineQueue === undefined ? {} : { enableOfflineQueue }),
        redisOptions: { ...redisOptions, ...perNode },
      });
    }
    return c.duplicate(overrides);
  }

  /** An ioredis Cluster on the same nodes and credentials as the app's node-redis cluster, for BullMQ only. */
  let twin: Opened | undefined;
  function ioredisTwin(): Opened {
    if (!twin) {
      const c = (parsed as { client: RawClient }).client;
      const options = (c.options ?? c._options ?? {}) as {
        rootNodes?: Array<{ url?: string; socket?: { host?: string; port?: number } }>;
        defaults?: { username?: string; password?: string; socket?: { tls?: boolean } };
      };
      let username = options.defaults?.username;
      let password = options.defaults?.password;
      let tls = options.defaults?.socket?.tls === true;
      const nodes = (options.rootNodes ?? []).map((node) => {
        if (node.url) {
          const url = new URL(node.url);
          username ??= url.username ? decodeURIComponent(url.username) : undefined;
          password ??= url.password ? decodeURIComponent(url.password) : undefined;
          tls ||= url.protocol === 'rediss:';
          return { host: url.hostname.replace(/^\[|\]$/g, ''), port: Number(url.port || 6379) };
        }
        return { host: node.socket?.host ?? '127.0.0.1', port: node.socket?.port ?? 6379 };
      });
      const Cluster = pick(loadPeer('ioredis'), 'Cluster') as new (...args: unknown[]) => RawClient;
      const redisOptions = { username, password, ...(tls ? { tls: {} } : {}) };
      // Never connected itself: a template that duplicateOf() copies (with lazyConnect false) for BullMQ.
      twin = { library: 'ioredis', client: new Cluster(nodes, { redisOptions, lazyConnect: true }) };
    }
    return twin;
  }

  let main: Opened | undefined = userClient;
  /** Our own ioredis client's first connection, which commands wait for (within their bound); then undefined. */
  let connecting: Promise<void> | undefined;
  function client(): Opened {
    if (!main) {
      // Commands sent while it connects wait for the connection (each is bounded in time by `command`); while
      // Redis is down, one retry each, then they fail: nothing piles up.
      own({ maxRetriesPerRequest: 1 });
      main = owned[owned.length - 1];
      if (main?.library === 'ioredis')
        connecting = firstAttempt(main.client)?.then(() => void (connecting = undefined));
    }
    return main as Opened;
  }

  function send(args: readonly string[], key: string | undefined, readonly: boolean): Promise<unknown> {
    const { library: lib, client: c } = client();
    if (lib === 'ioredis') {
      const [name, ...rest] = args;
      return (c.call as (...a: string[]) => Promise<unknown>).call(c, name as string, ...rest);
    }
    if (c.getSlotMaster !== undefined) {
      return (c.sendCommand as (k: string | undefined, r: boolean, a: readonly string[]) => Promise<unknown>).call(
        c,
        key,
        readonly,
        args,
      );
    }
    return (c.sendCommand as (a: readonly string[]) => Promise<unknown>).call(c, args);
  }

  async function command(args: readonly string[], opts: CommandOptions = {}): Promise<unknown> {
    try {
      client();
      const sent = connecting
        ? connecting.then(() => send(args, opts.key, opts.readonly ?? false))
        : send(args, opts.key, opts.readonly ?? false);
      return await withBound(sent, opts.timeoutMs ?? COMMAND_TIMEOUT_MS);
    } catch (err) {
      const reason = connectionFailure(err);
      if (reason) {
        reportUnreachable(reason);
        throw err instanceof RedisUnavailableError ? err : new RedisUnavailableError(reason);
      }
      // A Redis error reply (WRONGTYPE, CROSSSLOT, NOSCRIPT...): its first word, never the arguments.
      const code = err instanceof Error ? (/^[A-Z]+/.exec(err.message)?.[0] ?? err.name) : typeof err;
      const failure = new Error(`Redis refused ${args[0] ?? 'a command'}: ${code}`);
      failure.name = 'RedisCommandError';
      throw failure;
    }
  }

  const scripts = new Map<string, string>();
  async function runScript(
    script: string,
    keys: readonly string[],
    args: readonly string[],
    opts: CommandOptions = {},
  ) {
    let sha = scripts.get(script);
    if (!sha) scripts.set(script, (sha = sha1(script)));
    const argv = ['EVALSHA', sha, String(keys.length)];
    for (const key of keys) argv.push(key);
    for (const arg of args) argv.push(arg);
    const routed: CommandOptions = { timeoutMs: opts.timeoutMs, key: opts.key ?? keys[0], readonly: opts.readonly };
    try {
      return await command(argv, routed);
    } catch (err) {
      if (!(err instanceof Error) || !/NOSCRIPT/.test(err.message)) throw err;
      return command(['EVAL', script, ...argv.slice(2)], routed);
    }
  }

  return {
    library,
    cluster,
    address,
    prefix,
    key: (name) => `${prefix}:${name}`,
    command,
    eval: runScript,
    async get(key, opts) {
      const value = await command(['GET', key], { ...opts, key, readonly: true });
      if (value === null || value === undefined) return null;
      if (Buffer.isBuffer(value)) return value.toString('utf8');
      return typeof value === 'string' ? value : JSON.stringify(value);
    },
    async setPx(key, value, ttlMs, opts) {
      await command(['SET', key, value, 'PX', String(Math.max(1, Math.round(ttlMs)))], { ...opts, key });
    },
    async exists(key, opts) {
      return Number(await command(['EXISTS', key], { ...opts, key, readonly: true })) > 0;
    },
    isReady: () => clientReady(client().client),
    bullmqConnection(role) {
      const base = bullmqOverIoredis ? ioredisTwin() : client();
      if (role === 'producer') {
        // node-redis: the app's client itself (BullMQ shares it and never closes it); a producer needs no
        // connection of its own. ioredis: a duplicate that fails fast instead of queueing while Redis is away.
        if (base.library === 'node-redis') return base.client;
        return own({ enableOfflineQueue: false, maxRetriesPerRequest: 1 }, base);
      }
      // The worker blocks: never on the app's client. BullMQ requires maxRetriesPerRequest null on ioredis.
      return own({ maxRetriesPerRequest: null }, base);
    },
    duplicate() {
      return own({}, client());
    },
    reportUnreachable,
    async close() {
      await Promise.all(
        owned.splice(0).map(async ({ library: lib, client: c }) => {
          try {
            if (lib === 'ioredis') {
              if (c.status !== 'end') await (c.quit as () => Promise<unknown>).call(c);
            } else if (c.isOpen === true) {
              await (c.close as () => Promise<unknown>).call(c);
            }
          } catch {
            try {
              (lib === 'ioredis' ? (c.disconnect as () => void) : (c.destroy as () => void)).call(c);
            } catch {
              // already closed
            }
          }
        }),
      );
    },
  };
}
