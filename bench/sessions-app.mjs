// Child process for the session registry's figures (10, 11): one Express app whose sessions live in Redis through
// connect-redis 9 on a node-redis client, mounted twice: /plain/* on the bare RedisStore, /reg/* on the same store
// wrapped by createSessionRegistry() (the index in the same Redis, on the same client). Sessions are written
// straight into the store before a run, so the measured requests do only what they would in production.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { RedisStore } from 'connect-redis';
import express from 'express';
import session from 'express-session';
import { createClient } from 'redis';
import { serve } from './ipc.mjs';

const { polarLogout, createSessionRegistry } = await import(new URL('../dist/index.mjs', import.meta.url).href);
const signature = createRequire(createRequire(import.meta.url).resolve('express-session'))('cookie-signature');

const { POLAR_URL: baseUrl, POLAR_CLIENT_ID: clientId, POLAR_CLIENT_SECRET: clientSecret, REDIS_URL } = process.env;
const SECRET = randomBytes(32).toString('hex');
const client = createClient({ url: REDIS_URL });
client.on('error', () => {});
await client.connect();
// Round trips the app makes to Redis, counted where every command of this client goes (connect-redis's and the
// registry's alike): Redis's own counters also count the commands a script runs.
let sent = 0;
let owner = client;
while (owner && !Object.prototype.hasOwnProperty.call(owner, 'sendCommand')) owner = Object.getPrototypeOf(owner);
const sendCommand = owner.sendCommand;
const ours = new Set([client, client._self]);
owner.sendCommand = function (...args) {
  if (ours.has(this) || ours.has(this?._self)) sent += 1;
  return sendCommand.apply(this, args);
};
// A second client only for the bench's own questions (INFO, key counts): they must not be counted as the app's.
const inspector = createClient({ url: REDIS_URL });
inspector.on('error', () => {});
await inspector.connect();

const plainStore = new RedisStore({ client, prefix: 'sess:' });
const sessions = createSessionRegistry({
  store: new RedisStore({ client, prefix: 'sess:' }),
  redis: client,
  userIdOf: (data) => data.userId,
});
const options = { secret: SECRET, resave: false, saveUninitialized: false, name: 'connect.sid' };

const app = express();
const whoami = (req, res) => void res.json({ user: req.session.userId ?? null });
app.use('/plain', session({ ...options, store: plainStore }));
app.use('/reg', session({ ...options, store: sessions.store }));
app.get('/plain/whoami', whoami);
app.get('/reg/whoami', whoami);
const everywhere = polarLogout({ clientId, clientSecret, baseUrl, sessions, scope: 'everywhere' });
app.post('/reg/logout/everywhere', everywhere);
app.use((err, req, res, next) => {
  if (res.headersSent) return next(err);
  res.status(500).end();
});

const server = app.listen(0, '127.0.0.1', () => process.send({ ready: true, port: server.address().port }));
const call = (store, method, ...args) =>
  new Promise((resolve, reject) => store[method](...args, (err, value) => (err ? reject(err) : resolve(value))));

serve({
  cpu: () => process.cpuUsage(),
  /**
   * Writes `n` signed-in sessions (through the registry's store for `via: 'reg'`, so that they are indexed; straight
   * into the bare store for 'plain'), users `user` or one each; `tokens` (pairs) when given. Answers the cookies.
   */
  async seed({ n, via, user, tokens = [] }) {
    const cookies = [];
    const store = via === 'reg' ? sessions.store : plainStore;
    for (let i = 0; i < n; i += 1) {
      const sid = randomBytes(24).toString('base64url');
      const data = {
        cookie: { originalMaxAge: 3_600_000, expires: new Date(Date.now() + 3_600_000), httpOnly: true, path: '/' },
        userId: user ?? `user-${via}-${i}`,
        ...(tokens.length && { accessToken: tokens[2 * i], refreshToken: tokens[2 * i + 1] }),
      };
      await call(store, 'set', sid, data);
      cookies.push(`connect.sid=${encodeURIComponent(`s:${signature.sign(sid, SECRET)}`)}`);
    }
    return cookies;
  },
  /** Commands (round trips) the app has sent to Redis so far. */
  commands: () => sent,
  /** The CPU time Redis has used so far, in µs (INFO cpu: its user and system time). */
  async redisCpu() {
    const info = await inspector.info('cpu');
    const seconds = (name) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1] ?? NaN);
    return (seconds('used_cpu_user') + seconds('used_cpu_sys')) * 1e6;
  },
  /** Sessions in the store. */
  async count() {
    let n = 0;
    for await (const keys of inspector.scanIterator({ MATCH: 'sess:*', COUNT: 1000 })) n += keys.length;
    return n;
  },
  async flush() {
    await inspector.flushAll();
  },
  async close() {
    everywhere.close();
    await sessions.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    client.destroy();
    inspector.destroy();
    setImmediate(() => process.exit(0));
  },
});
