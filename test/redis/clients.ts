/**
 * The four client libraries in the peer ranges (ioredis 5 and 6, node-redis 5 and 6, the 6s through npm
 * aliases), each able to open a single-node, a Cluster and (ioredis) a Sentinel client, so that every test of
 * test/redis/ runs once per library.
 */
import IORedis5 from 'ioredis';
import IORedis6 from 'ioredis6';
import * as nodeRedis5 from 'redis';
import * as nodeRedis6 from 'redis6';

export interface AnyClient {
  /** What the tests pass to the library (the client itself). */
  readonly client: object;
  /** Commands for the test's own checks. */
  send(args: string[], key?: string): Promise<unknown>;
  close(): Promise<void>;
}

export interface ClientLibrary {
  readonly name: string;
  single(url: string): Promise<AnyClient>;
  cluster(nodes: Array<{ host: string; port: number }>): Promise<AnyClient>;
  /** A client that finds the master through Sentinels (ioredis only here). */
  sentinel?(sentinels: Array<{ host: string; port: number }>, name: string): Promise<AnyClient>;
}

type IORedisModule = typeof IORedis5;

function ioredis(name: string, Redis: IORedisModule): ClientLibrary {
  const wrap = async (
    client: InstanceType<IORedisModule> | InstanceType<IORedisModule['Cluster']>,
  ): Promise<AnyClient> => {
    client.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      client.once('ready', () => resolve());
      client.once('end', () => reject(new Error(`${name} did not connect`)));
    });
    return {
      client,
      send: ([command, ...args]) => client.call(command!, ...args),
      close: async () => {
        await client.quit().catch(() => client.disconnect());
      },
    };
  };
  return {
    name,
    single: (url) => wrap(new Redis(url, { maxRetriesPerRequest: 1 })),
    cluster: (nodes) => wrap(new Redis.Cluster(nodes)),
    sentinel: (sentinels, masterName) => wrap(new Redis({ sentinels, name: masterName, maxRetriesPerRequest: 1 })),
  };
}

type NodeRedisModule = typeof nodeRedis5;

function nodeRedis(name: string, lib: NodeRedisModule): ClientLibrary {
  return {
    name,
    async single(url) {
      const client = lib.createClient({ url });
      client.on('error', () => undefined);
      await client.connect();
      return {
        client,
        send: (args) => client.sendCommand(args),
        close: async () => {
          await client.close();
        },
      };
    },
    async cluster(nodes) {
      const client = lib.createCluster({
        rootNodes: nodes.map(({ host, port }) => ({ url: `redis://${host}:${port}` })),
      });
      client.on('error', () => undefined);
      await client.connect();
      return {
        client,
        send: (args, key) => client.sendCommand(key, false, args),
        close: async () => {
          await client.close();
        },
      };
    },
  };
}

export const LIBRARIES: ClientLibrary[] = [
  ioredis('ioredis 5', IORedis5),
  ioredis('ioredis 6', IORedis6 as unknown as IORedisModule),
  nodeRedis('node-redis 5', nodeRedis5),
  nodeRedis('node-redis 6', nodeRedis6 as unknown as NodeRedisModule),
];

export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 15_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
