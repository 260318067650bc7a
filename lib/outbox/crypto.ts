/**
 * Queued tokens never sit in clear: each is sealed with AES-256-GCM under a key derived (HKDF-SHA256) from
 * `encryptionKey` or the client secret, and bound to its job id and token type. Job ids are an HMAC of the
 * token under a second derived key, so the same token always maps to the same job, and nobody who can read
 * Redis can confirm a guessed token without the key.
 */
import { createCipheriv, createDecipheriv, createHmac, hkdfSync, randomBytes } from 'node:crypto';
import type { TokenTypeHint } from '../types';

const SALT = 'express-polar-logout/outbox';
const VERSION_PREFIX = 'v1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface OutboxKeys {
  readonly encryption: Buffer;
  readonly jobId: Buffer;
}

function derive(material: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, SALT, info, 32));
}

export function deriveKeys(material: Buffer): OutboxKeys {
  return { encryption: derive(material, 'token encryption v1'), jobId: derive(material, 'job id v1') };
}

/** `rv-` + 128 bits of HMAC-SHA256(token): stable per token, useless without the key. */
export function jobIdOf(keys: OutboxKeys, token: string): string {
  return `rv-${createHmac('sha256', keys.jobId).update(token, 'utf8').digest('hex').slice(0, 32)}`;
}

function aadOf(jobId: string, hint: TokenTypeHint): Buffer {
  return Buffer.from(`${jobId}|${hint}`, 'utf8');
}

/** Encrypts a token for storage; the result is bound to its job id and hint (swapping them breaks it). */
export function seal(keys: OutboxKeys, token: string, jobId: string, hint: TokenTypeHint): string {
  const iv = randomBytes(IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', keys.encryption, iv, { authTagLength: TAG_BYTES });
  cipher.setAAD(aadOf(jobId, hint));
  const body = Buffer.concat([cipher.update(token, 'utf8'), cipher.final()]);
  return VERSION_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url');
}

/** Decrypts a sealed token; undefined when it was sealed under another key, for another job, or altered. */
export function unseal(keys: OutboxKeys, sealed: string, jobId: string, hint: TokenTypeHint): string | undefined {
  if (!sealed.startsWith(VERSION_PREFIX)) return undefined;
  const raw = Buffer.from(sealed.slice(VERSION_PREFIX.length), 'base64url');
  if (raw.length <= IV_BYTES + TAG_BYTES) return undefined;
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
