// Child process: a real Express 5 app with express-session's MemoryStore and the logout routes the figures
// compare, driven by bench/run.mjs (and bench/ab.mjs). Sessions are written straight into the store before a run
// (see `seed`), so the measured requests do only what a logout does: load the session, log out, destroy it.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { createRequire } from 'node:module';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import express from 'express';
import session from 'express-session';
import { serve } from './ipc.mjs';
import { naiveLogout } from './naive-route.mjs';
import { openidClientRevoke, polarSdkRevoke } from './peer-routes.mjs';
import { parallelLogout, referenceRevoke } from './reference-route.mjs';

// EPL_DIST: another build's dist/ (bench/ab.mjs compares two builds); default this checkout's.
const dist = process.env.EPL_DIST
  ? pathToFileURL(`${resolve(process.env.EPL_DIST)}/`)
  : new URL('../dist/', import.meta.url);
const { polarLogout, createRevocationOutbox, createPolarRevoker } = await import(new URL('index.mjs', dist).href);
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
// Figure 9: the same options as /logout on a build of the library whose telemetry entry points are no-ops
// (bench/variants.mjs, path given by run.mjs): what the library costs without telemetry.
// Its other side is the same sources built the same way, telemetry included: each side a bundle of its own, used
// by its route alone (dist/ serves every route and figure, and V8 runs code that saw many instances slower).
const variant = async (path) =>
  path ? (await import(pathToFileURL(path).href)).polarLogout({ clientId, clientSecret, baseUrl }) : undefined;
const noTelemetry = await variant(process.env.EPL_NO_TELEMETRY_BUILD);
const withTelemetry = await variant(process.env.EPL_WITH_TELEMETRY_BUILD);
if (noTelemetry) app.post('/logout-no-telemetry', noTelemetry);
if (withTelemetry) app.post('/logout-telemetry', withTelemetry);
// Figure 7's live logouts: a handler sharing the drain's rate budget through its Redis, made by liveStart().
let live;
app.post('/logout-live', (req, res, next) => (live ? live(req, res, next) : res.status(503).end()));
// The floor: what any logout must do locally.
app.post('/bare-logout', (req, res, next) => {
  req.session.destroy((err) => (err ? next(err) : res.redirect(303, '/')));
});

// Errors (the naive route's, when the stand-in drops its hung sockets) answer 500 without printing the
// axios error, which would carry the request body.
app.use((err, req, res, next) => {
  // What failed, for the bench's problems list: the route and the error's code or name, never its message.
  // (The naive route has no timeout: against the hanging stand-in its calls end only when the stand-in drops them.)
  if (!req.path.startsWith('/naive'))
    console.error(`bench app: ${req.path} failed: ${err?.code ?? err?.name ?? typeof err}`);
  if (res.headersSent) return next(err);
  res.status(500).end();
});

const server = app.listen(0, '127.0.0.1', () => {
  process.send({ ready: true, port: server.address().port });
});

/**
 * Figure 9's OpenTelemetry SDK, loaded on first use, as a real app's NodeSDK sets it up: a MeterProvider whose
 * periodic reader exports to memory every second, a TracerProvider batching spans to an in-memory exporter that
 * is emptied (and counted) every second, as if shipped, and the AsyncLocalStorage context manager.
 */
let otelSdk;
async function openTelemetrySdk() {
  if (otelSdk) return otelSdk;
  const { context, metrics, trace } = await import('@opentelemetry/api');
  const { AsyncLocalStorageContextManager } = await import('@opentelemetry/context-async-hooks');
  const { AggregationTemporality, InMemoryMetricExporter, MeterProvider, PeriodicExportingMetricReader } =
    await import('@opentelemetry/sdk-metrics');
  const { BasicTracerProvider, BatchSpanProcessor, InMemorySpanExporter } =
    await import('@opentelemetry/sdk-trace-base');
  let on;
  /** What the exporters hold goes into the counts and out of memory, as if it were shipped. */
  const ship = () => {
    on.shipped.spans += on.spanExporter.getFinishedSpans().length;
    on.shipped.metricExports += on.metricExporter.getMetrics().length;
    on.spanExporter.reset();
    on.metricExporter.reset();
  };
  otelSdk = {
    register() {
      const metricExporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE);
      const spanExporter = new InMemorySpanExporter();
      const meterProvider = new MeterProvider({
        readers: [new PeriodicExportingMetricReader({ exporter: metricExporter, exportIntervalMillis: 1000 })],
      });
      const tracerProvider = new BasicTracerProvider({ spanProcessors: [new BatchSpanProcessor(spanExporter)] });
      context.setGlobalContextManager(new AsyncLocalStorageContextManager().enable());
      metrics.setGlobalMeterProvider(meterProvider);
      trace.setGlobalTracerProvider(tracerProvider);
      on = { metricExporter, spanExporter, meterProvider, tracerProvider, shipped: { spans: 0, metricExports: 0 } };
      on.shipping = setInterval(ship, 1000);
    },
    /** Unregisters the SDK; answers what it exported while registered (spans, metric exports). */
    async unregister() {
      if (!on) return { spans: 0, metricExports: 0 };
      metrics.disable();
      trace.disable();
      context.disable();
      clearInterval(on.shipping);
      // Flushed and counted before shutdown(), which empties the in-memory exporters.
      await Promise.all([on.meterProvider.forceFlush(), on.tracerProvider.forceFlush()]);
      ship();
      await Promise.all([on.meterProvider.shutdown(), on.tracerProvider.shutdown()]);
      const { shipped } = on;
      on = undefined;
      return shipped;
    },
  };
  return otelSdk;
}

/** bench/ab.mjs --prof's inspector session. */
let profiler;
/** bench/ab.mjs's revocation client (created on first use, its pool kept warm across rounds). */
let soloRevoker;

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
  /**
   * Figure 7: /logout-live becomes polarLogout with Polar's limit as `rateLimit`, sharing the budget through the
   * Redis the outbox's workers use (`redis`), as an app and its workers would.
   */
  liveStart({ redisUrl, rateLimit }) {
    live?.close();
    live = polarLogout({ clientId, clientSecret, baseUrl, rateLimit, redis: redisUrl });
  },
  liveStop() {
    live?.close();
    live = undefined;
  },
  /**
   * Figure 9: registers the OpenTelemetry SDK (`on`), or unregisters it and answers what it exported meanwhile.
   */
  async otel({ on }) {
    const sdk = await openTelemetrySdk();
    if (!on) return sdk.unregister();
    sdk.register();
    return null;
  },
  /** bench/ab.mjs --prof: V8's sampling profiler over the measured rounds only (not start-up, not warm-up). */
  async profileStart() {
    profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.setSamplingInterval', { interval: 100 });
    await profiler.post('Profiler.start');
  },
  async profileStop({ file }) {
    const { profile } = await profiler.post('Profiler.stop');
    profiler.disconnect();
    writeFileSync(file, JSON.stringify(profile));
  },
  /**
   * bench/ab.mjs: the revocation client alone, outside Express. Revokes the pairs one after the other (or
   * `parallel` at a time) with createPolarRevoker() and answers each revoke()'s duration in ms.
   */
  async revokeTimes({ tokens, parallel = 1 }) {
    soloRevoker ??= createPolarRevoker({ clientId, clientSecret, baseUrl });
    const revoker = soloRevoker;
    const times = [];
    let next = 0;
    const lane = async () => {
      while (next < tokens.length) {
        const i = next;
        next += 2;
        const began = performance.now();
        const r = await revoker.revoke({ accessToken: tokens[i], refreshToken: tokens[i + 1] });
        times.push(performance.now() - began);
        if (r.accessToken.status !== 'revoked' || r.refreshToken.status !== 'revoked') throw new Error('not revoked');
      }
    };
    await Promise.all(Array.from({ length: parallel }, lane));
    return times;
  },
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
    noTelemetry?.close();
    withTelemetry?.close();
    live?.close();
    oursOutbox.close();
    for (const client of clients) client.close();
    soloRevoker?.close();
    await outbox.close();
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
    // Exit (rather than wait for hung naive requests) so that --cpu-prof writes its profile.
    setImmediate(() => process.exit(0));
  },
});
