// Child process: a real Express 5 app with express-session's MemoryStore and eight logout routes, driven
// by bench/run.mjs. Sessions are written straight into the store before a run (see `seed`), so the
// measured requests do only what a logout does: load the session from the store, log out, destroy it.
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import express from 'express';
import session from 'express-session';
import { serve } from './ipc.mjs';
import { naiveLogout } from './naive-route.mjs';
import { openidClientRevoke, polarSdkRevoke } from './peer-routes.mjs';
import { parallelLogout, referenceRevoke } from './reference-route.mjs';

const { polarLogout, createRevocationOutbox } = await import(new URL('../dist/index.mjs', import.meta.url).href);
// express-session signs its cookie with its own copy of cookie-signature; sign seeded cookies the same way.
const signature = createRequire(createRequire(import.meta.url).resolve('express-session'))('cookie-signature');

const { POLAR_URL: baseUrl, POLAR_CLIENT_ID: clientId, POLAR_CLIENT_SECRET: clientSecret } = process.env;
const SECRET = randomBytes(32).toString('hex');
const store = new session.MemoryStore();

const app = express();
app.use(session({ secret: SECRET, store, resave: false, saveUninitialized: false, name: 'connect.sid' }));

const ours = polarLogout({ clientId, clientSecret, baseUrl });
const ours500 = polarLogout({ clientId, clientSecret, baseUrl, timeoutMs: 500 });
app.post('/logout', ours);
app.post('/logout-500', ours500);
// The same as /logout with an in-memory outbox configured: a healthy logout never calls it, so this route
// measures what merely having one costs.
const outbox = createRevocationOutbox({ clientId, clientSecret, baseUrl });
const oursOutbox = polarLogout({ clientId, clientSecret, baseUrl, outbox });
app.post('/logout-outbox', oursOutbox);
app.post('/naive-logout', naiveLogout({ baseUrl, clientId, clientSecret }));
// Figure 3b: the minimal parallel logout (the reference), and the same route on the peers' clients.
const polarConfig = { baseUrl, clientId, clientSecret };
const clients = [referenceRevoke(polarConfig), polarSdkRevoke(polarConfig), openidClientRevoke(polarConfig)];
app.post('/reference-logout', parallelLogout(clients[0].revoke));
app.post('/sdk-logout', parallelLogout(clients[1].revoke));
app.post('/openid-logout', parallelLogout(clients[2].revoke));
// The floor: what any logout must do locally.
app.post('/bare-logout', (req, res, next) => {
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

// Errors (the naive route's, when the stand-in drops its hung sockets) answer 500 without printing the
// axios error, which would carry the request body.
app.use((err, req, res, next) => {
  if (res.headersSent) return next(err);
  res.status(500).end();
});

const server = app.listen(0, '127.0.0.1', () => {
  process.send({ ready: true, port: server.address().port });
});

const storeCall = (method, ...args) =>
  new Promise((resolve, reject) => store[method](...args, (err, value) => (err ? reject(err) : resolve(value))));

serve({
  cpu: () => process.cpuUsage(),
  /** Writes one logged-in session per token pair into the store; answers the Cookie headers that select them. */
  async seed({ tokens }) {
    const cookies = [];
    for (let i = 0; i < tokens.length; i += 2) {
      const sid = randomBytes(24).toString('base64url');
      const sess = {
        cookie: { originalMaxAge: null, expires: null, httpOnly: true, path: '/' },
        userId: `user-${i / 2}`,
        accessToken: tokens[i],
        refreshToken: tokens[i + 1],
      };
      await storeCall('set', sid, sess);
      cookies.push(`connect.sid=${encodeURIComponent(`s:${signature.sign(sid, SECRET)}`)}`);
    }
    return cookies;
  },
  count: () => storeCall('length'),
  /** What the outbox holds (nothing, after healthy logouts). */
  outboxCounts: () => outbox.counts(),
  clear: () => storeCall('clear'),
  /** Heap used after full collections (the process runs with --expose-gc). */
  async heap() {
    for (let i = 0; i < 4; i += 1) {
      globalThis.gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    return process.memoryUsage().heapUsed;
  },
  async close() {
    ours.close();
    ours500.close();
    oursOutbox.close();
    for (const client of clients) client.close();
    await outbox.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    // Exit (rather than wait for hung naive requests) so that --cpu-prof writes its profile.
    setImmediate(() => process.exit(0));
  },
});
