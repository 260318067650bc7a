/**
 * The adapter's construction-time checks, as a table: what it was given, and the one message that says what
 * is wrong. No message carries a password; cluster clients are recognised without connecting.
 */
import IORedis from 'ioredis';
import { createCluster, createClient } from 'redis';
import { createRedisAdapter, hashTagOf } from '../../lib/redis';

const PASSWORD = 's3cret-pw-91ab';

function messageOf(build: () => unknown): string {
  try {
    build();
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('did not throw');
}

describe('createRedisAdapter()', () => {
  it.each([
    ['a number', 6379, /option `redis` must be a redis:\/\/ or rediss:\/\/ URL, an ioredis client .*; got number\./],
    ['an http URL', 'http://127.0.0.1:6379', /got a http: URL/],
    ['a pool-like wrapper', { sendCommand: () => undefined }, /this client is neither .*pass the client itself/],
    ['ioredis options with keyPrefix', { host: 'h', keyPrefix: 'a:' }, /must not set keyPrefix/],
  ])('refuses %s with one message', (_name, input, message) => {
    expect(messageOf(() => createRedisAdapter(input, { feature: 'a test', acceptOptions: true }))).toMatch(message);
  });

  it('refuses an ioredis client with keyPrefix', () => {
    const client = new IORedis({ lazyConnect: true, keyPrefix: 'app:' });
    expect(messageOf(() => createRedisAdapter(client, { feature: 'a test' }))).toMatch(
      /ioredis client with a keyPrefix/,
    );
  });

  it('names host and port, never the password', () => {
    const adapter = createRedisAdapter(`redis://user:${PASSWORD}@10.1.2.3:6390/0`, { feature: 'a test' });
    expect(adapter.address).toBe('10.1.2.3:6390');
    const nodeRedis = createRedisAdapter(createClient({ url: `redis://:${PASSWORD}@10.1.2.4:6391` }), {
      feature: 'a test',
    });
    expect(nodeRedis.address).toBe('10.1.2.4:6391');
    const ioredis = new IORedis({ lazyConnect: true, host: '10.1.2.5', port: 6392, password: PASSWORD });
    expect(createRedisAdapter(ioredis, { feature: 'a test' }).address).toBe('10.1.2.5:6392');
  });

  it('recognises cluster clients without connecting, and wants a hash tag in their prefix', () => {
    const nodeCluster = createCluster({
      rootNodes: [{ url: 'redis://10.0.0.1:7000' }, { url: 'redis://10.0.0.2:7001' }],
    });
    const ioCluster = new IORedis.Cluster([{ host: '10.0.0.3', port: 7002 }], { lazyConnect: true });
    for (const client of [nodeCluster, ioCluster]) {
      const adapter = createRedisAdapter(client, { feature: 'a test' });
      expect(adapter.cluster).toBe(true);
      expect(adapter.prefix).toBe('{polar-logout}');
      expect(adapter.key('budget')).toBe('{polar-logout}:budget');
      expect(messageOf(() => createRedisAdapter(client, { feature: 'a test', prefix: 'mine:' }))).toMatch(
        /option `prefix` must contain a hash tag such as '\{mine\}'/,
      );
      expect(createRedisAdapter(client, { feature: 'a test', prefix: 'app:{mine}:' }).prefix).toBe('app:{mine}:');
    }
    expect(createRedisAdapter(nodeCluster, { feature: 'a test' }).address).toBe('10.0.0.1:7000,10.0.0.2:7001');
    // A single node takes any prefix.
    expect(createRedisAdapter(createClient(), { feature: 'a test', prefix: 'plain:' }).cluster).toBe(false);
  });

  it.each([
    ['{polar-logout}:x', 'polar-logout'],
    ['a{b}c', 'b'],
    ['{}x{y}', undefined],
    ['no-tag', undefined],
  ])('hash tag of %s is %s', (key, tag) => {
    expect(hashTagOf(key)).toBe(tag);
  });
});
