// @ts-check
/**
 * The redis-server process itself: found, started on a loopback port with persistence off, stopped, its
 * directory removed. Plain CommonJS so that both the TypeScript test helper (./redis-server.ts, which adds
 * readiness checks and inspection over node-redis) and the benchmark (bench/run.mjs) use the same one.
 */
'use strict';
const { spawn, spawnSync } = require('node:child_process');
const { mkdtempSync, rmSync, writeFileSync } = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const REDIS_SERVER_BIN = process.env.REDIS_SERVER_BIN ?? 'redis-server';

/** Whether redis-server can be run here (it answers `--version`). */
function redisServerAvailable() {
  const probe = spawnSync(REDIS_SERVER_BIN, ['--version'], { encoding: 'utf8' });
  return probe.status === 0 && /Redis server/i.test(probe.stdout ?? '');
}

/**
 * A port that was free a moment ago on 127.0.0.1 (for servers whose URL must be known before they listen).
 * @returns {Promise<number>}
 */
function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = /** @type {net.AddressInfo} */ (server.address());
      server.close(() => resolve(port));
    });
  });
}

/** @type {Set<import('node:child_process').ChildProcess>} */
const running = new Set();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** @param {import('node:child_process').ChildProcess} child */
function exited(child) {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve(undefined)));
}

/**
 * Starts redis-server with `args` (run in `dir`, which stop() removes). A process that is still running when
 * this one exits is killed.
 * @param {string[]} args
 * @param {string} dir
 * @param {number} port
 */
function spawnRedis(args, dir, port) {
  const child = spawn(REDIS_SERVER_BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: dir });
  running.add(child);
  let output = '';
  /** @param {Buffer} chunk */
  const collect = (chunk) => {
    output = (output + chunk.toString('utf8')).slice(-4000);
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  return {
    child,
    port,
    dir,
    url: `redis://127.0.0.1:${port}`,
    /** The last 4,000 characters it printed (for error messages). */
    output: () => output,
    /** SIGKILL: gone at once, connections refused. stop() still cleans up afterwards. */
    async kill() {
      child.kill('SIGKILL');
      await exited(child);
    },
    /** SIGTERM (SIGKILL after 3 s), then removes its directory. Safe after kill() and when called twice. */
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const force = setTimeout(() => child.kill('SIGKILL'), 3000);
        child.kill('SIGTERM');
        await exited(child);
        clearTimeout(force);
      }
      running.delete(child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Starts redis-server on `port` (127.0.0.1 only, no persistence, in a fresh temporary directory), with
 * `extraArgs` (e.g. `--cluster-enabled yes`, or `--appendonly yes` to turn persistence on). It is not ready yet:
 * the caller waits until it answers. `dir`: the directory of a server that was stopped, to start it again with
 * its data and its cluster configuration (a node restart).
 * @param {number} port
 * @param {string[]} [extraArgs]
 * @param {string} [dir]
 */
function spawnRedisServer(port, extraArgs = [], dir = mkdtempSync(path.join(os.tmpdir(), 'epl-redis-'))) {
  return spawnRedis(
    ['--port', String(port), '--bind', '127.0.0.1', '--protected-mode', 'yes']
      .concat(['--save', '', '--appendonly', 'no', '--dir', dir, '--loglevel', 'warning'])
      .concat(extraArgs),
    dir,
    port,
  );
}

/**
 * Starts a Sentinel on `port` watching `masterName` at 127.0.0.1:`masterPort` (quorum 2, down after 1 s).
 * A Sentinel rewrites its configuration file, so it gets one of its own in a fresh directory.
 * @param {number} port
 * @param {string} masterName
 * @param {number} masterPort
 */
function spawnSentinel(port, masterName, masterPort) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'epl-sentinel-'));
  const conf = path.join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      'loglevel warning',
      `sentinel monitor ${masterName} 127.0.0.1 ${masterPort} 2`,
      `sentinel down-after-milliseconds ${masterName} 1000`,
      `sentinel failover-timeout ${masterName} 10000`,
      `sentinel parallel-syncs ${masterName} 1`,
      '',
    ].join('\n'),
  );
  return spawnRedis([conf, '--sentinel'], dir, port);
}

module.exports = { REDIS_SERVER_BIN, redisServerAvailable, freePort, spawnRedisServer, spawnSentinel };
