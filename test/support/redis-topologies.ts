/**
 * Redis as users deploy it, for the tests of test/redis/: a 3-master Redis Cluster and a Sentinel group (one
 * master, one replica, three Sentinels), all Debian's redis-server on free loopback ports, in temporary
 * directories, stopped by PID (SIGTERM, then SIGKILL) and removed afterwards.
 */
import { spawnSync } from 'node:child_process';
import { createClient } from 'redis';
import { freePort, spawnRedisServer, spawnSentinel, type SpawnedRedisServer } from './redis-process.cjs';

const REDIS_CLI_BIN = process.env.REDIS_CLI_BIN ?? 'redis-cli';

/** Runs `command` on 127.0.0.1:port with a short-lived node-redis client; undefined while it does not answer. */
async function ask(port: number, command: string[]): Promise<string | undefined> {
  const client = createClient({
    url: `redis://127.0.0.1:${port}`,
    socket: { reconnectStrategy: false, connectTimeout: 500 },
  });
  client.on('error', () => undefined);
  try {
    await client.connect();
    const reply = await client.sendCommand(command);
    await client.close();
    return Array.isArray(reply) ? JSON.stringify(reply) : typeof reply === 'string' ? reply : JSON.stringify(reply);
  } catch {
    if (client.isOpen) client.destroy();
    return undefined;
  }
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  output: () => string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what} not within ${timeoutMs} ms:\n${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function stopAll(servers: readonly SpawnedRedisServer[]): Promise<void> {
  await Promise.all(servers.map((server) => server.stop()));
}

export interface RedisCluster {
  /** The masters' ports (each holds a third of the slots). */
  readonly ports: number[];
  /** `{ host, port }` of every master, for ioredis `new Cluster(nodes)`. */
  readonly nodes: Array<{ host: string; port: number }>;
  /** `{ url }` of every master, for node-redis `createCluster({ rootNodes })`. */
  readonly rootNodes: Array<{ url: string }>;
  /** Every key of every master matching a pattern. */
  keys(pattern: string): Promise<string[]>;
  /** The port of the master that serves `key`'s slot. */
  ownerOf(key: string): Promise<number>;
  /** Stops one master by signal (SIGKILL: at once; SIGTERM: Redis's own shutdown), keeping its directory. */
  stopNode(port: number, signal: 'SIGKILL' | 'SIGTERM'): Promise<void>;
  /** Starts a stopped master again (same port, nodes.conf, and data if persistent); resolves once it answers. */
  startNode(port: number): Promise<void>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** AOF on, fsync at every write: a node restarted after SIGKILL has every write it acknowledged. */
  persistent?: boolean;
}

/** Three masters, no replicas: `redis-cli --cluster create … --cluster-replicas 0 --cluster-yes`. */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisCluster> {
  const ports = await Promise.all([freePort(), freePort(), freePort()]);
  const args = ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-node-timeout', '2000'];
  if (options.persistent) args.push('--appendonly', 'yes', '--appendfsync', 'always');
  const servers = ports.map((port) => spawnRedisServer(port, args));
  const output = (): string => servers.map((s) => s.output()).join('\n');
  try {
    for (const port of ports)
      await until(`redis-server :${port}`, async () => (await ask(port, ['PING'])) === 'PONG', 10_000, output);
    const create = spawnSync(
      REDIS_CLI_BIN,
      ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
      { encoding: 'utf8', timeout: 30_000 },
    );
    if (create.status !== 0) throw new Error(`redis-cli --cluster create failed:\n${create.stdout}\n${create.stderr}`);
    for (const port of ports) {
      await until(
        `cluster state ok on :${port}`,
        async () => /cluster_state:ok/.test((await ask(port, ['CLUSTER', 'INFO'])) ?? ''),
        20_000,
        output,
      );
    }
  } catch (err) {
    await stopAll(servers);
    throw err;
  }
  return {
    ports,
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    rootNodes: ports.map((port) => ({ url: `redis://127.0.0.1:${port}` })),
    async keys(pattern) {
      const all: string[] = [];
      for (const port of ports) {
        const reply = await ask(port, ['KEYS', pattern]);
        all.push(...(JSON.parse(reply ?? '[]') as string[]));
      }
      return all;
    },
    async ownerOf(key) {
      const slot = Number(await ask(ports[0], ['CLUSTER', 'KEYSLOT', key]));
      for (const port of ports) {
        const reply = await ask(port, ['CLUSTER', 'SLOTS']);
        if (!reply) continue; // this one is down: another knows
        const ranges = JSON.parse(reply) as Array<[number, number, [string, number]]>;
        const range = ranges.find(([from, to]) => from <= slot && slot <= to);
        if (range) return range[2][1];
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    async stopNode(port, signal) {
      const { child } = serverOn(port);
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill(signal);
      await exited;
    },
    async startNode(port) {
      const previous = serverOn(port);
      const server = spawnRedisServer(port, args, previous.dir);
      servers[servers.indexOf(previous)] = server;
      // This child answers (not another process that took the port meanwhile), with its cluster configuration.
      await until(
        `redis-server :${port} again`,
        async () =>
          /^process_id:(\d+)/m.exec((await ask(port, ['INFO', 'server'])) ?? '')?.[1] === String(server.child.pid),
        10_000,
        output,
      );
    },
    stop: () => stopAll(servers),
  };

  function serverOn(port: number): SpawnedRedisServer {
    const server = servers.find((s) => s.port === port);
    if (!server) throw new Error(`no cluster node on port ${port}`);
    return server;
  }
}

export interface RedisSentinelGroup {
  readonly masterName: string;
  /** `{ host, port }` of the three Sentinels, for ioredis `new Redis({ sentinels, name })`. */
  readonly sentinels: Array<{ host: string; port: number }>;
  /** Port of the master the group started with. */
  readonly masterPort: number;
  readonly replicaPort: number;
  /** The port the Sentinels currently name as master. */
  currentMasterPort(): Promise<number | undefined>;
  /** SIGKILL of the current master. */
  killMaster(): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisSentinelGroup(masterName = 'polarmaster'): Promise<RedisSentinelGroup> {
  const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all([
    freePort(),
    freePort(),
    freePort(),
    freePort(),
    freePort(),
  ]);
  const master = spawnRedisServer(masterPort);
  const replica = spawnRedisServer(replicaPort, ['--replicaof', '127.0.0.1', String(masterPort)]);
  const servers: SpawnedRedisServer[] = [master, replica];
  const output = (): string => servers.map((s) => s.output()).join('\n');
  const currentMasterPort = async (): Promise<number | undefined> => {
    for (const port of sentinelPorts) {
      const reply = await ask(port, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', masterName]);
      if (reply) return Number((JSON.parse(reply) as string[])[1]);
    }
    return undefined;
  };
  try {
    await until('master', async () => (await ask(masterPort, ['PING'])) === 'PONG', 10_000, output);
    await until(
      'replica in sync',
      async () => /master_link_status:up/.test((await ask(replicaPort, ['INFO', 'replication'])) ?? ''),
      15_000,
      output,
    );
    for (const port of sentinelPorts) servers.push(spawnSentinel(port, masterName, masterPort));
    for (const port of sentinelPorts) {
      // Each Sentinel sees the replica and the two other Sentinels before the group is used.
      await until(
        `sentinel :${port} ready`,
        async () => {
          const replicas = await ask(port, ['SENTINEL', 'REPLICAS', masterName]);
          const others = await ask(port, ['SENTINEL', 'SENTINELS', masterName]);
          return !!replicas && replicas !== '[]' && !!others && (JSON.parse(others) as unknown[]).length >= 2;
        },
        20_000,
        output,
      );
    }
  } catch (err) {
    await stopAll(servers);
    throw err;
  }
  return {
    masterName,
    sentinels: sentinelPorts.map((port) => ({ host: '127.0.0.1', port })),
    masterPort: masterPort,
    replicaPort: replicaPort,
    currentMasterPort,
    async killMaster() {
      const port = await currentMasterPort();
      await servers.find((s) => s.port === port)?.kill();
    },
    stop: () => stopAll(servers),
  };
}
