/**
 * What the app gave us, recognised once: a URL, or a client of ioredis (5, 6; single node, Sentinel or Cluster)
 * or node-redis (5, 6; single node or cluster). Recognition is structural (no peer is imported) and the result
 * says, in one message, what is wrong with anything else. Only this file looks inside a client.
 */
import { invalidOption } from '../errors';

export type RedisLibrary = 'ioredis' | 'node-redis';

interface ParsedBase {
  /** `host:port` (or a list), for messages: never a user name or password. */
  address: string;
}
export type ParsedRedis =
  | (ParsedBase & { kind: 'url'; url: string })
  | (ParsedBase & { kind: 'options'; options: Record<string, unknown> })
  | (ParsedBase & { kind: 'client'; library: RedisLibrary; cluster: boolean; client: RawClient });

/** The parts of either library's client this package calls; everything else stays untouched. */
export interface RawClient {
  duplicate(...args: unknown[]): RawClient;
  on(event: string, listener: (...args: unknown[]) => void): unknown;
  [name: string]: unknown;
}

const EXPECTED =
  'must be a redis:// or rediss:// URL, an ioredis client (new Redis(), new Redis.Cluster()), ' +
  'a node-redis client (createClient(), createCluster()) or ioredis connection options';

function hostPort(host: unknown, port: unknown): string {
  const h = typeof host === 'string' && host !== '' ? host : '127.0.0.1';
  const p = typeof port === 'number' || typeof port === 'string' ? String(port) : '6379';
  return `${h.includes(':') ? `[${h}]` : h}:${p}`;
}

/** host:port of a redis URL, without its credentials. */
function urlAddress(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  try {
    const url = new URL(value);
    return hostPort(url.hostname.replace(/^\[|\]$/g, ''), url.port || '6379');
  } catch {
    return undefined;
  }
}

function nodeAddress(node: unknown): string {
  if (typeof node === 'number') return hostPort(undefined, node);
  if (typeof node === 'string') return urlAddress(node.includes('://') ? node : `redis://${node}`) ?? '?';
  const n = (node ?? {}) as {
    host?: unknown;
    port?: unknown;
    url?: unknown;
    socket?: { host?: unknown; port?: unknown };
  };
  return urlAddress(n.url) ?? hostPort(n.host ?? n.socket?.host, n.port ?? n.socket?.port);
}

function addressOf(library: RedisLibrary, cluster: boolean, client: Record<string, unknown>): string {
  // node-redis keeps a cluster's options in `_options`.
  const options = (client.options ?? client._options ?? {}) as Record<string, unknown>;
  if (library === 'ioredis') {
    if (cluster) return (Array.isArray(client.startupNodes) ? client.startupNodes : []).map(nodeAddress).join(',');
    if (Array.isArray(options.sentinels)) {
      return `sentinel "${String(options.name)}" via ${options.sentinels.map(nodeAddress).join(',')}`;
    }
    return hostPort(options.host, options.port);
  }
  if (cluster) return (Array.isArray(options.rootNodes) ? options.rootNodes : []).map(nodeAddress).join(',');
  return nodeAddress(options);
}

function parseUrl(value: string): ParsedRedis {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw invalidOption('redis', `${EXPECTED}; the string given is not a URL.`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw invalidOption('redis', `${EXPECTED}; got a ${url.protocol} URL.`);
  }
  return { kind: 'url', url: value, address: urlAddress(value) ?? '?' };
}

/** Recognises the `redis` option (or createRedisTombstones' `client`); throws one message naming `option`. */
export function parseRedis(value: unknown, option = 'redis', acceptOptions = true): ParsedRedis {
  if (typeof value === 'string') return parseUrl(value);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw invalidOption(
      option,
      `${EXPECTED}; got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}.`,
    );
  }
  const c = value as Record<string, unknown>;
  const isFn = (name: string): boolean => typeof c[name] === 'function';
  const options = (c.options ?? {}) as Record<string, unknown>;

  if (isFn('defineCommand') && isFn('call') && isFn('duplicate') && typeof c.status === 'string') {
    const cluster = c.isCluster === true;
    const keyPrefix = cluster
      ? (options.redisOptions as Record<string, unknown> | undefined)?.keyPrefix
      : options.keyPrefix;
    if (keyPrefix) {
      throw invalidOption(
        option,
        'is an ioredis client with a keyPrefix, which BullMQ refuses and which would hide keys from other clients: ' +
          'pass a client without keyPrefix (this package names its own keys; see `prefix`).',
      );
    }
    return {
      kind: 'client',
      library: 'ioredis',
      cluster,
      client: c as RawClient,
      address: addressOf('ioredis', cluster, c),
    };
  }
  if (isFn('sendCommand') && isFn('duplicate') && 'isOpen' in c) {
    // A node-redis cluster routes by key and has no single socket: it knows its masters and slots.
    const cluster = 'masters' in c && isFn('getSlotMaster');
    return {
      kind: 'client',
      library: 'node-redis',
      cluster,
      client: c as RawClient,
      address: addressOf('node-redis', cluster, c),
    };
  }
  if (isFn('sendCommand') || isFn('call') || isFn('duplicate')) {
    throw invalidOption(
      option,
      `${EXPECTED}; this client is neither (a node-redis client needs sendCommand(), duplicate() and isOpen; ` +
        'an ioredis client call(), defineCommand(), duplicate() and status). Pools and wrappers are not supported: pass the client itself.',
    );
  }
  if (!acceptOptions) throw invalidOption(option, `${EXPECTED.replace(' or ioredis connection options', '')}.`);
  if (c.keyPrefix !== undefined) {
    throw invalidOption(
      option,
      'must not set keyPrefix (BullMQ refuses it); this package names its own keys (see `prefix`).',
    );
  }
  return { kind: 'options', options: { ...c }, address: hostPort(c.host, c.port) };
}

/** Whether a client (either library, single or cluster) can take commands now. */
export function clientReady(c: RawClient): boolean {
  if (typeof c.status === 'string') return c.status === 'ready' || (c.isCluster === true && c.status === 'connect');
  return (c.isReady ?? c.isOpen) === true;
}
