/**
 * The outbox's pure parts: sealing and job ids (what is stored cannot be read, altered, moved to another
 * job, or matched against a guessed token without the key), retry delays, and the worker's lock sizing.
 */
import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { deriveKeyring, deriveKeys, jobIdOf, keyIdOf, seal, unseal, type OutboxKeys } from '../../lib/outbox/crypto';
import { lockTimings, queueNameFor } from '../../lib/outbox/bullmq-queue';
import { retryDelay } from '../../lib/outbox/job';

const token = 'polar_at_u_c3VwZXItc2VjcmV0LXRva2VuLXZhbHVlLTEyMzQ1Njc4';
const material = Buffer.from('polar_cs_crypto_test_secret_0123456789');
const keys = deriveKeyring([material]);
const older = Buffer.from('an-older-key-of-at-least-32-characters!!');

/** A token sealed the way 0.1.0 did (`v1.`, no key id), to check that such jobs still open. */
function sealV1(k: OutboxKeys, plain: string, jobId: string, hint: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', k.encryption, iv, { authTagLength: 16 });
  cipher.setAAD(Buffer.from(`${jobId}|${hint}`, 'utf8'));
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return `v1.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
}

describe('outbox crypto', () => {
  it('round-trips a sealed token, and the sealed form shows nothing of it but the key id', () => {
    const id = jobIdOf(keys.current, token);
    const sealed = seal(keys, token, id, 'access_token');
    expect(sealed).toMatch(/^v2\.[0-9a-f]{8}\.[A-Za-z0-9_-]+$/);
    expect(keyIdOf(sealed)).toBe(keys.current.id);
    expect(sealed).not.toContain(token);
    expect(sealed).not.toContain(Buffer.from(token).toString('base64url'));
    expect(sealed).not.toContain(Buffer.from(token).toString('base64'));
    expect(unseal(keys, sealed, id, 'access_token')).toBe(token);
  });

  it('seals the same token differently every time (random IV)', () => {
    const id = jobIdOf(keys.current, token);
    expect(seal(keys, token, id, 'access_token')).not.toBe(seal(keys, token, id, 'access_token'));
  });

  it('refuses a sealed token under another key, for another job or hint, or altered', () => {
    const id = jobIdOf(keys.current, token);
    const sealed = seal(keys, token, id, 'access_token');
    const other = deriveKeyring([Buffer.from('another-secret-of-at-least-32-characters!')]);
    expect(unseal(other, sealed, id, 'access_token')).toBeUndefined();
    expect(unseal(keys, sealed, jobIdOf(keys.current, 'another token'), 'access_token')).toBeUndefined();
    expect(unseal(keys, sealed, id, 'refresh_token')).toBeUndefined();
    const head = sealed.slice(0, 12); // v2.<8 hex>.
    const raw = Buffer.from(sealed.slice(12), 'base64url');
    raw[raw.length - 1]! ^= 1;
    expect(unseal(keys, `${head}${raw.toString('base64url')}`, id, 'access_token')).toBeUndefined();
    expect(unseal(keys, 'v3.' + sealed.slice(3), id, 'access_token')).toBeUndefined();
    expect(unseal(keys, `${head}AAAA`, id, 'access_token')).toBeUndefined();
    expect(unseal(keys, 'v1.AAAA', id, 'access_token')).toBeUndefined();
  });

  it('keyring: seals under the first key; opens with the key the blob names, among older ones', () => {
    const old = deriveKeyring([older]);
    const rotated = deriveKeyring([material, older]);
    const id = jobIdOf(old.current, token);
    const sealedOld = seal(old, token, id, 'refresh_token');
    // A worker that lists the old key after the new one opens what was sealed before the rotation.
    expect(unseal(keys, sealedOld, id, 'refresh_token')).toBeUndefined();
    expect(unseal(rotated, sealedOld, id, 'refresh_token')).toBe(token);
    // New tokens are sealed under the current key, and a worker still on the old key alone cannot open them.
    const sealedNew = seal(rotated, token, id, 'refresh_token');
    expect(keyIdOf(sealedNew)).toBe(rotated.current.id);
    expect(keyIdOf(sealedNew)).not.toBe(keyIdOf(sealedOld));
    expect(unseal(old, sealedNew, id, 'refresh_token')).toBeUndefined();
    expect(unseal(deriveKeyring([older, material]), sealedNew, id, 'refresh_token')).toBe(token);
    // Only the named key is tried: a blob relabelled with another key's id of the ring does not open.
    const relabelled = `v2.${old.current.id}.${sealedNew.slice(12)}`;
    expect(unseal(rotated, relabelled, id, 'refresh_token')).toBeUndefined();
  });

  it('opens 0.1.0 blobs (no key id) with any key of the ring', () => {
    const id = jobIdOf(deriveKeys(older), token);
    const legacy = sealV1(deriveKeys(older), token, id, 'access_token');
    expect(unseal(deriveKeyring([older]), legacy, id, 'access_token')).toBe(token);
    expect(unseal(deriveKeyring([material, older]), legacy, id, 'access_token')).toBe(token);
    expect(unseal(keys, legacy, id, 'access_token')).toBeUndefined();
    expect(unseal(deriveKeyring([material, older]), legacy, id, 'refresh_token')).toBeUndefined();
  });

  it('gives a token one stable job id, keyed: a plain hash of the token does not find it', () => {
    const id = jobIdOf(keys.current, token);
    expect(id).toMatch(/^rv-[0-9a-f]{32}$/);
    expect(jobIdOf(keys.current, token)).toBe(id);
    expect(jobIdOf(keys.current, `${token}x`)).not.toBe(id);
    const plain = createHash('sha256').update(token).digest('hex');
    expect(plain).not.toContain(id.slice(3));
    expect(jobIdOf(deriveKeys(Buffer.from('x'.repeat(32))), token)).not.toBe(id);
  });

  it('derives separate keys for encryption and ids, and a key id that is not a plain hash of the key', () => {
    const k = keys.current;
    expect(k.encryption.equals(k.jobId)).toBe(false);
    expect(k.encryption).toHaveLength(32);
    expect(k.id).toMatch(/^[0-9a-f]{8}$/);
    expect(createHash('sha256').update(material).digest('hex')).not.toContain(k.id);
    expect(deriveKeys(older).id).not.toBe(k.id);
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
