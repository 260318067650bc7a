// Child process: the Polar stand-in from express-polar-logout/testing, driven over IPC by bench/run.mjs.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { serve } from './ipc.mjs';

// EPL_DIST: another build's dist/ (bench/ab.mjs --polar), default this checkout's.
const dist = process.env.EPL_DIST
  ? pathToFileURL(`${resolve(process.env.EPL_DIST)}/`)
  : new URL('../dist/', import.meta.url);
const { startFakePolar } = await import(new URL('testing/index.mjs', dist).href);

let polar = await startFakePolar();
const { clientId, clientSecret } = polar;
const port = Number(new URL(polar.url).port);
let latencyMs = 0;
let rateLimit;
let batch = [];

/** A fresh stand-in on the same port with the current latency and rate limit (clients start from a cold pool). */
async function restart() {
  await polar.close();
  polar = await startFakePolar({ port, clientId, clientSecret, latencyMs, ...(rateLimit && { rateLimit }) });
}

serve({
  cpu: () => process.cpuUsage(),
  /** Issues n token pairs (one grant each) and remembers them as the current batch. */
  issue({ n }) {
    batch = [];
    for (let i = 0; i < n; i += 1) {
      const { accessToken, refreshToken } = polar.issueTokens();
      batch.push(accessToken, refreshToken);
    }
    return batch;
  },
  /** Issues n access tokens (one grant each) and remembers them as the current batch (for the outbox drain). */
  issueAccess({ n }) {
    batch = [];
    for (let i = 0; i < n; i += 1) batch.push(polar.issueTokens().accessToken);
    return batch;
  },
  /** Issues n token pairs without touching the current batch (figure 7's live logouts, beside a drain's batch). */
  issuePairs({ n }) {
    const tokens = [];
    for (let i = 0; i < n; i += 1) {
      const { accessToken, refreshToken } = polar.issueTokens();
      tokens.push(accessToken, refreshToken);
    }
    return tokens;
  },
  /** How many of `tokens` are still active. */
  activeAmong({ tokens }) {
    return tokens.filter((token) => polar.isActive(token)).length;
  },
  latency({ ms }) {
    latencyMs = ms;
    polar.setLatency(ms);
  },
  hang() {
    polar.fail({ type: 'hang' });
  },
  heal() {
    polar.heal();
  },
  /** Forgets recorded calls and zeroes the connection counter. */
  reset() {
    polar.resetCalls();
  },
  /**
   * What the stand-in saw since the last reset, and how many tokens of the current batch are still active.
   * firstAt / lastAt: when the first and the last call arrived (the stand-in's clock, ms), for rates measured
   * where Polar would measure them.
   */
  stats() {
    let revoked200 = 0;
    let hung = 0;
    let other = 0;
    let firstAt = Infinity;
    let lastAt = -Infinity;
    for (const call of polar.calls) {
      if (call.result === 200 && call.authenticated && call.clientAuth === 'client_secret_post') revoked200 += 1;
      else if (call.result === 'hang') hung += 1;
      else other += 1;
      firstAt = Math.min(firstAt, call.receivedAt);
      lastAt = Math.max(lastAt, call.receivedAt);
    }
    let active = 0;
    for (const token of batch) if (polar.isActive(token)) active += 1;
    return {
      calls: polar.calls.length,
      revoked200,
      hung,
      other,
      connections: polar.connections,
      maxConcurrent: polar.maxConcurrent,
      active,
      rejected429: polar.rejected429,
      firstAt: polar.calls.length ? firstAt : null,
      lastAt: polar.calls.length ? lastAt : null,
    };
  },
  /** Closes every connection (hung ones included) and listens again on the same port: clients start from a cold pool. */
  async drop() {
    await restart();
  },
  /**
   * Restarts the stand-in with Polar's limit modelled (`{ requests, perMs, retryAfter }`: 429 beyond it per
   * client IP), or without one (`null`). Tokens issued before are forgotten: issue after this.
   */
  async limit({ rateLimit: next }) {
    rateLimit = next ?? undefined;
    await restart();
  },
});

process.send({ ready: true, url: polar.url, clientId, clientSecret });
