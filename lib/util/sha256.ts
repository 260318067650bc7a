/**
 * SHA-256 of a string (UTF-8), as base64url or hex. Node's one-shot `crypto.hash()` (Node 20.12 and later) costs
 * about a third of a `createHash()` object for inputs this short, and several hashes run on every signed-in
 * request (tombstone key, handle, user key); older Node versions in the engines range use `createHash()`.
 */
import * as crypto from 'node:crypto';

type OneShot = (algorithm: string, data: string, outputEncoding: 'base64url' | 'hex') => string;
const oneShot = (crypto as { hash?: OneShot }).hash;

export const sha256: (data: string, encoding: 'base64url' | 'hex') => string =
  typeof oneShot === 'function'
    ? (data, encoding) => oneShot('sha256', data, encoding)
    : (data, encoding) => crypto.createHash('sha256').update(data).digest(encoding);
