// Logouts at a steady rate (open loop): request i is sent at start + i / perSecond whatever the answers before it
// did, as users arrive, each with the cookie of a different session: figure 7's live logouts, bench/ab.mjs --steady.
import http from 'node:http';
import { performance } from 'node:perf_hooks';

const BROWSER_HEADERS = { accept: 'text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8' };

/** Answers every request's duration (ms, sorted) and status, and how many were sent late (behind schedule). */
export async function steadyLogouts({ url, cookies, perSecond, timeoutMs = 10_000 }) {
  const { hostname, port, pathname } = new URL(url);
  const agent = new http.Agent({ keepAlive: true });
  const statuses = new Map();
  const durations = [];
  let late = 0;
  const one = (cookie) =>
    new Promise((resolve) => {
      const began = performance.now();
      const req = http.request(
        { host: hostname, port, path: pathname, method: 'POST', agent, headers: { ...BROWSER_HEADERS, cookie } },
        (res) => {
          res.resume();
          res.once('end', () => {
            durations.push(performance.now() - began);
            statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
            resolve();
          });
        },
      );
      req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
      req.once('error', () => {
        statuses.set('error', (statuses.get('error') ?? 0) + 1);
        resolve();
      });
      req.end();
    });
  const started = performance.now();
  const pending = [];
  for (let i = 0; i < cookies.length; i += 1) {
    const due = started + (i * 1000) / perSecond;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else if (wait < -5) late += 1;
    pending.push(one(cookies[i]));
  }
  await Promise.all(pending);
  agent.destroy();
  return {
    durations: durations.sort((a, b) => a - b),
    statuses: Object.fromEntries(statuses),
    late,
    seconds: (performance.now() - started) / 1000,
  };
}
