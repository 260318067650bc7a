/**
 * Session ids in the Redis index, sealed: with `encryptionKey`, each id is stored as AES-256-GCM ciphertext bound to
 * its handle (`s1.<key id>.<iv|tag|body>`), so that whoever reads Redis cannot take over a session from the index.
 * Keys come as a ring, current first, as the outbox's: a rotation keeps older entries readable.
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { invalidOption } from '../errors';
import { resolveKey } from '../outbox/options';

const PREFIX = 's1.';
const IV_BYTES = 12;
const TAG_BYTES = 16;

interface Key {
  id: string;
  secret: Buffer;
}

export interface SessionIdSealer {
  seal(sid: string, handle: string): string;
  /** The session id, or undefined when no key of the ring opens it. */
  open(stored: string, handle: string): string | undefined;
}

function derive(material: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync('sha256', material, 'express-polar-logout/sessions', info, 32));
}

/** No key: ids are kept as they are (as the session store itself keeps them). */
const PLAIN: SessionIdSealer = {
  seal: (sid) => sid,
  open: (stored) => (stored.startsWith(PREFIX) ? undefined : stored),
};

export function createSealer(encryptionKey: unknown): SessionIdSealer {
  if (encryptionKey === undefined) return PLAIN;
  const materials = Array.isArray(encryptionKey) ? (encryptionKey as unknown[]) : [encryptionKey];
  if (materials.length === 0) throw invalidOption('encryptionKey', 'must list at least one key: [current, ...older].');
  const ring: Key[] = materials.map((value, i) => {
    const material = resolveKey(value, Array.isArray(encryptionKey) ? `encryptionKey[${i}]` : 'encryptionKey');
    return { id: derive(material, 'key id v1').toString('hex').slice(0, 8), secret: derive(material, 'session id v1') };
  });
  const current = ring[0] as Key;
  return {
    seal(sid, handle) {
      const iv = randomBytes(IV_BYTES);
      const cipher = createCipheriv('aes-256-gcm', current.secret, iv).setAAD(Buffer.from(handle));
      const body = Buffer.concat([cipher.update(sid, 'utf8'), cipher.final()]);
      return `${PREFIX}${current.id}.${Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64url')}`;
    },
    open(stored, handle) {
      if (!stored.startsWith(PREFIX)) return stored; // written before a key was configured
      const [id, data] = stored.slice(PREFIX.length).split('.');
      const key = ring.find((k) => k.id === id);
      if (!key || !data) return undefined;
      const raw = Buffer.from(data, 'base64url');
      try {
        const decipher = createDecipheriv('aes-256-gcm', key.secret, raw.subarray(0, IV_BYTES));
        decipher.setAAD(Buffer.from(handle)).setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
        return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString('utf8');
      } catch {
        return undefined;
      }
    },
  };
}
