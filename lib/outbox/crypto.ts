/**
 * Queued tokens never sit in clear: each is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from
 * `encryptionKey` or the client secret, and bound to its job id and token type. Job ids are an HMAC of the
 * token under a second derived key, so the same token always maps to the same job, and nobody who can read
 * Redis can confirm a guessed token without the key.
 *
 * Keys come as a ring: tokens are sealed under the first (current) key and carry its key id, so a worker
 * that also lists older keys opens what producers sealed before a rotation. Blobs from before key ids
 * (`v1.`) are tried with every key of the ring.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { TokenTypeHint } from '../types';

const SALT = 'express-polar-logout/outbox';
/** `v1.<iv|tag|body>`: no key id (0.1.0). */
const V1_PREFIX = 'v1.';
/** `v2.<key id>.<iv|tag|body>`. */
const V2_PREFIX = 'v2.';
const KEY_ID = /^[0-9a-f]{8}$/;
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface OutboxKeys {
  /** Names the key in sealed blobs: derived like the keys (HKDF), so it says nothing the ciphertext does not. */
  readonly id: string;
  readonly encryption: Buffer;
  readonly jobId: Buffer;
}

/** The current key (seals, names jobs) and every key that may open a sealed token, the current one first. */
export interface OutboxKeyring {
  readonly current: OutboxKeys;
  readonly all: readonly OutboxKeys[];
}

function derive(material: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, SALT, info, 32));
}

export function deriveKeys(material: Buffer): OutboxKeys {
  return {
    id: derive(material, 'key id v1').toString('hex').slice(0, 8),
    encryption: derive(material, 'token encryption v1'),
    jobId: derive(material, 'job id v1'),
  };
}

/** A ring from key material, current first (at least one). */
export function deriveKeyring(materials: readonly Buffer[]): OutboxKeyring {
  const all = materials.map(deriveKeys);
  const current = all[0];
  if (!current) throw new RangeError('an outbox keyring needs at least one key');
  return { current, all };
}

/** `rv-` + 128 bits of HMAC-SHA256(token): stable per token, useless without the key. */
export function jobIdOf(keys: OutboxKeys, token: string): string {
  return `rv-${createHmac('sha256', keys.jobId).update(token, 'utf8').digest('hex').slice(0, 32)}`;
}

function aadOf(jobId: string, hint: TokenTypeHint): Buffer {
  return Buffer.from(`${jobId}|${hint}`, 'utf8');
}

/** Encrypts a token for storage under the current key; bound to its job id and hint (swapping them breaks it). */
export function seal(ring: OutboxKeyring, token: string, jobId: string, hint: TokenTypeHint): string {
  const keys = ring.current;
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys.encryption, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aadOf(jobId, hint));
  const body = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
  return `${V2_PREFIX}${keys.id}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
}

function open(keys: OutboxKeys, raw: Buffer, jobId: string, hint: TokenTypeHint): string | undefined {
  try {
    const decipher = createDecipheriv('aes-256-gcm', keys.encryption, raw.subarray(0, IV_BYTES), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(aadOf(jobId, hint));
    decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
    return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
  } catch {
    return undefined;
  }
}

/** The key id a sealed token names, or undefined for a `v1.` blob (or one that is not ours). */
export function keyIdOf(sealed: string): string | undefined {
  if (!sealed.startsWith(V2_PREFIX)) return undefined;
  const id = sealed.slice(V2_PREFIX.length, V2_PREFIX.length + 8);
  return KEY_ID.test(id) ? id : undefined;
}

/**
 * Decrypts a sealed token with the key its id names (or, for a `v1.` blob, with each key of the ring);
 * undefined when no key of the ring opens it, or it was sealed for another job, or altered.
 */
export function unseal(ring: OutboxKeyring, sealed: string, jobId: string, hint: TokenTypeHint): string | undefined {
  let candidates: readonly OutboxKeys[];
  let body: string;
  if (sealed.startsWith(V1_PREFIX)) {
    candidates = ring.all;
    body = sealed.slice(V1_PREFIX.length);
  } else {
    const id = keyIdOf(sealed);
    if (id === undefined || sealed[V2_PREFIX.length + 8] !== '.') return undefined;
    candidates = ring.all.filter((keys) => keys.id === id);
    body = sealed.slice(V2_PREFIX.length + 9);
  }
  const raw = Buffer.from(body, 'base64url');
  if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
  for (const keys of candidates) {
    const token = open(keys, raw, jobId, hint);
    if (token !== undefined) return token;
  }
  return undefined;
}
