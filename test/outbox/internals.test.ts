/**
 * The outbox's pure parts: sealing and job ids (what is stored cannot be read, altered, moved to another
 * job, or matched against a guessed token without the key), retry delays, and the worker's lock sizing.
 */
import { createHash } from 'node:crypto';
import { deriveKeys, jobIdOf, seal, unseal } from '../../lib/outbox/crypto';
import { lockTimings, queueNameFor } from '../../lib/outbox/bullmq-queue';
import { retryDelay } from '../../lib/outbox/job';

const token = 'polar_at_u_c3VwZXItc2VjcmV0LXRva2VuLXZhbHVlLTEyMzQ1Njc4';
const keys = deriveKeys(Buffer.from('polar_cs_crypto_test_secret_0123456789'));

describe('outbox crypto', () => {
  it('round-trips a sealed token, and the sealed form shows nothing of it', () => {
    const id = jobIdOf(keys, token);
    const sealed = seal(keys, token, id, 'access_token');
    expect(sealed).toMatch(/^v1\.[A-Za-z0-9_-]+$/);
    expect(sealed).not.toContain(token);
    expect(sealed).not.toContain(Buffer.from(token).toString('base64url'));
    expect(sealed).not.toContain(Buffer.from(token).toString('base64'));
    expect(unseal(keys, sealed, id, 'access_token')).toBe(token);
  });

  it('seals the same token differently every time (random IV)', () => {
    const id = jobIdOf(keys, token);
    expect(seal(keys, token, id, 'access_token')).not.toBe(seal(keys, token, id, 'access_token'));
  });

  it('refuses a sealed token under another key, for another job or hint, or altered', () => {
    const id = jobIdOf(keys, token);
    const sealed = seal(keys, token, id, 'access_token');
    const other = deriveKeys(Buffer.from('another-secret-of-at-least-32-characters!'));
    expect(unseal(other, sealed, id, 'access_token')).toBeUndefined();
    expect(unseal(keys, sealed, jobIdOf(keys, 'another token'), 'access_token')).toBeUndefined();
    expect(unseal(keys, sealed, id, 'refresh_token')).toBeUndefined();
    const raw = Buffer.from(sealed.slice(3), 'base64url');
    raw[raw.length - 1]! ^= 1;
    expect(unseal(keys, `v1.${raw.toString('base64url')}`, id, 'access_token')).toBeUndefined();
    expect(unseal(keys, 'v2.' + sealed.slice(3), id, 'access_token')).toBeUndefined();
    expect(unseal(keys, 'v1.AAAA', id, 'access_token')).toBeUndefined();
  });

  it('gives a token one stable job id, keyed: a plain hash of the token does not find it', () => {
    const id = jobIdOf(keys, token);
    expect(id).toMatch(/^rv-[0-9a-f]{32}$/);
    expect(jobIdOf(keys, token)).toBe(id);
    expect(jobIdOf(keys, `${token}x`)).not.toBe(id);
    const plain = createHash('sha256').update(token).digest('hex');
    expect(plain).not.toContain(id.slice(3));
    expect(jobIdOf(deriveKeys(Buffer.from('x'.repeat(32))), token)).not.toBe(id);
  });

  it('derives separate keys for encryption and ids', () => {
    expect(keys.encryption.equals(keys.jobId)).toBe(false);
    expect(keys.encryption).toHaveLength(32);
  });
});

describe('retry delays', () => {
  const backoff = { initialDelayMs: 1000, maxDelayMs: 300_000 };

  it('grow exponentially from 1 s with ±25 % jitter, capped at 5 min', () => {
    for (let attempt = 1; attempt <= 30; attempt += 1) {
      const step = Math.min(300_000, 1000 * 2 ** (attempt - 1));
      for (let i = 0; i < 50; i += 1) {
        const delay = retryDelay(attempt, undefined, backoff);
        expect(delay).toBeGreaterThanOrEqual(Math.floor(step * 0.75));
        expect(delay).toBeLessThanOrEqual(Math.min(300_000, Math.ceil(step * 1.25)));
      }
    }
    expect(retryDelay(5000, undefined, backoff)).toBeLessThanOrEqual(300_000);
  });

  it('spread: the same attempt does not always wait the same', () => {
    expect(new Set(Array.from({ length: 20 }, () => retryDelay(3, undefined, backoff))).size).toBeGreaterThan(1);
  });

  it("follow Polar's Retry-After, but never sooner than the first step", () => {
    expect(retryDelay(1, 120_000, backoff)).toBe(120_000);
    expect(retryDelay(9, 3_600_000, backoff)).toBe(3_600_000);
    expect(retryDelay(4, 0, backoff)).toBe(1000);
  });
});

describe('worker lock sizing', () => {
  it("takes back a dead worker's job within 30 s for every allowed timeoutMs (lock + two stall checks)", () => {
    for (const timeoutMs of [1, 500, 1000, 5000, 7500, 10_000, 30_000, 120_000]) {
      const { lockDuration, stalledInterval } = lockTimings(timeoutMs);
      expect(lockDuration + 2 * stalledInterval).toBeLessThanOrEqual(30_000);
      expect(stalledInterval).toBeGreaterThanOrEqual(1000);
      // A live worker renews at lockDuration / 2: the lock outlasts one renewal gap with room to spare.
      expect(lockDuration).toBeGreaterThanOrEqual(2000);
    }
    expect(lockTimings(5000)).toEqual({ lockDuration: 10_000, stalledInterval: 5000 });
    expect(lockTimings(1000)).toEqual({ lockDuration: 2000, stalledInterval: 1000 });
  });

  it('gives each OAuth client its own queue, named without the client id', () => {
    expect(queueNameFor('polar_ci_a')).toMatch(/^revocations-[0-9a-f]{16}$/);
    expect(queueNameFor('polar_ci_a')).not.toBe(queueNameFor('polar_ci_b'));
    expect(queueNameFor('polar_ci_a')).not.toContain('polar_ci_a');
  });
});
