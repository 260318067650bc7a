/**
 * The worker bin with a keyring: POLAR_OUTBOX_ENCRYPTION_KEY lists keys, comma-separated, current first. A real
 * bin process drains, from a real redis-server, a job sealed under an older key; a bad entry is named.
 */
import { createRevocationOutbox, type RevocationOutbox } from '../../lib';
import { startFakePolar, type FakePolar } from '../../lib/testing';
import { waitFor } from './support/app';
import { bundleLibrary, startChild, type Bundle, type Child } from './support/children';
import { describeWithRedis, startRedisServer, type RedisServer } from '../support/redis-server';

const OLD_KEY = 'o'.repeat(16) + 'old-key-0123456789';
const NEW_KEY = 'n'.repeat(16) + 'new-key-0123456789';

describeWithRedis('the worker bin with several encryption keys', () => {
  let bundle: Bundle;
  let redis: RedisServer;
  let fake: FakePolar;
  const children: Child[] = [];
  const outboxes: RevocationOutbox[] = [];

  beforeAll(async () => {
    [bundle, redis] = await Promise.all([bundleLibrary(), startRedisServer()]);
  });
  afterAll(async () => {
    bundle.remove();
    await redis.stop();
  });
  beforeEach(async () => {
    fake = await startFakePolar();
  });
  afterEach(async () => {
    for (const child of children) {
      for (const secret of [fake.clientSecret, OLD_KEY, NEW_KEY]) expect(child.output()).not.toContain(secret);
    }
    await Promise.all(children.splice(0).map((c) => c.kill('SIGKILL')));
    await Promise.all(outboxes.splice(0).map((o) => o.close()));
    await fake.close();
  });

  const env = (keys: string): Record<string, string> => ({
    POLAR_CLIENT_ID: fake.clientId,
    POLAR_CLIENT_SECRET: fake.clientSecret,
    POLAR_BASE_URL: fake.url,
    REDIS_URL: redis.url,
    POLAR_OUTBOX_TIMEOUT_MS: '1000',
    POLAR_OUTBOX_ENCRYPTION_KEY: keys,
  });

  it('drains a job queued under an older key when the env var lists it after the current one', async () => {
    const producer = createRevocationOutbox({
      clientId: fake.clientId,
      clientSecret: fake.clientSecret,
      baseUrl: fake.url,
      redis: redis.url,
      worker: false,
      encryptionKey: OLD_KEY,
    });
    outboxes.push(producer);
    const { refreshToken } = fake.issueTokens();
    await producer.enqueue(refreshToken, 'refresh_token', {});

    const worker = startChild(bundle.bin, env(`${NEW_KEY}, ${OLD_KEY}`));
    children.push(worker);
    const settled = await worker.waitFor((r) => r.msg === 'revocation settled', 15_000, 'the job to settle');
    expect(settled).toMatchObject({ level: 'info', outcome: 'revoked', tokenType: 'refresh_token', attempts: 1 });
    expect(fake.isActive(refreshToken)).toBe(false);
    await waitFor(async () => (await producer.counts()).delayed === 0, 2000, 'an empty outbox');
    expect(worker.output()).not.toContain('UNREADABLE_JOB');
  });

  it('names the entry of the list that is not a valid key, and exits 2', async () => {
    const child = startChild(bundle.bin, env(`${NEW_KEY},short`));
    children.push(child);
    expect(await child.exited()).toBe(2);
    expect(child.records[0]).toMatchObject({
      level: 'error',
      msg: expect.stringContaining('option `encryptionKey[1]`') as string,
    });
  });
});
