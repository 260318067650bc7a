// Figures 10 and 11: the session registry (log out everywhere). Called by run.mjs with its helpers, so that the
// figures join the one table; the app (bench/sessions-app.mjs) and its redis-server are this module's own.
//
// 10. Log out everywhere for a user with 100 sessions, the stand-in answering at once: the time of the whole
//    request (200 tokens revoked, 100 sessions ended) and the calls Polar received. Reported.
// 11. The registry's cost on requests that do not modify the session (GET, a signed-in session): Redis commands
//    per request beyond connect-redis's own (target: at most 1, the tombstone and "not before" checks together),
//    and the throughput with the registry over without it (target >= 0.9), concurrency 50, paired rounds.
import { performance } from 'node:perf_hooks';
import autocannon from 'autocannon';

const USER_SESSIONS = 100;

/** GET load with the given cookies in turn; answers requests per second and the 200s. */
async function getLoad(url, cookies, { connections, amount }) {
  let next = 0;
  let ok = 0;
  const started = performance.now();
  let last = started;
  const instance = autocannon({
    url,
    method: 'GET',
    connections,
    amount,
    sampleInt: 100,
    requests: [
      {
        setupRequest(req) {
          const cookie = cookies[next++ % cookies.length];
          return { ...req, headers: { ...req.headers, cookie } };
        },
      },
    ],
  });
  instance.on('response', (_client, status) => {
    last = performance.now();
    if (status === 200) ok += 1;
  });
  await instance;
  return { rate: ok / ((last - started) / 1000), ok };
}

export async function sessionFigures(ctx, tools) {
  const { start, stopping, figureStart, figureEnd, row, log, sized, median, startRedis } = tools;
  const redis = await startRedis();
  if (!redis) {
    ctx.problems.push('figures 10 and 11: no redis-server to run (apt-get install redis-server)');
    return;
  }
  const app = await start('sessions-app.mjs', {
    env: {
      POLAR_URL: ctx.polar.info.url,
      POLAR_CLIENT_ID: ctx.polar.info.clientId,
      POLAR_CLIENT_SECRET: ctx.polar.info.clientSecret,
      REDIS_URL: redis.url,
    },
  });
  const base = `http://127.0.0.1:${app.info.port}`;
  try {
    await everywhereFigure(ctx, { app, base, figureStart, figureEnd, row, log, sized, median });
    await costFigure(ctx, { app, base, figureStart, figureEnd, row, log, sized, median });
  } finally {
    stopping(true);
    await app.call('close').catch(() => {});
    await new Promise((resolve) => (app.child.exitCode === null ? app.child.once('exit', resolve) : resolve()));
    stopping(false);
    await redis.stop();
  }
}

async function everywhereFigure(ctx, { app, base, figureStart, figureEnd, row, log, sized, median }) {
  const { polar, problems } = ctx;
  const load = await figureStart(ctx, '10', `log out everywhere, ${USER_SESSIONS} sessions, instant stand-in`);
  await polar.call('latency', { ms: 0 });
  const times = [];
  const calls = [];
  for (let i = 0; i < sized(7, 2); i += 1) {
    await polar.call('reset');
    const tokens = await polar.call('issue', { n: USER_SESSIONS });
    const cookies = await app.call('seed', { n: USER_SESSIONS, via: 'reg', user: `everywhere-${i}`, tokens });
    const before = await app.call('count');
    const startedAt = performance.now();
    const res = await fetch(`${base}/reg/logout/everywhere`, {
      method: 'POST',
      headers: { cookie: cookies[0], accept: 'application/json', 'sec-fetch-site': 'same-origin' },
    });
    const ms = performance.now() - startedAt;
    const body = await res.json().catch(() => ({}));
    const seen = await polar.call('stats');
    const after = await app.call('count');
    const fail = (what) => problems.push(`figure 10, round ${i + 1}: ${what}`);
    if (res.status !== 200) fail(`answered ${res.status}`);
    if (body.sessions?.sessions !== USER_SESSIONS) fail(`ended ${body.sessions?.sessions} sessions`);
    if (body.sessions?.revoked !== 2 * USER_SESSIONS) fail(`revoked ${body.sessions?.revoked} tokens`);
    if (seen.active !== 0) fail(`${seen.active} tokens still active at the stand-in`);
    if (before - after !== USER_SESSIONS) fail(`${before - after} sessions left the store`);
    times.push(ms);
    calls.push(seen.calls);
    log(`  round ${i + 1}: ${ms.toFixed(1)} ms, ${seen.calls} calls to Polar, ${before - after} sessions ended`);
    await app.call('flush');
  }
  figureEnd(load);
  const ms = median(times);
  row(ctx, {
    id: '10',
    figure: `10. log out everywhere, ${USER_SESSIONS} sessions, instant Polar`,
    ours: `${ms.toFixed(1)} ms, ${median(calls)} calls to Polar`,
    other: `${(ms / USER_SESSIONS).toFixed(2)} ms per session`,
    target: 'report',
    load,
    values: { ms, calls: median(calls), rounds: times },
  });
}

async function costFigure(ctx, { app, base, figureStart, figureEnd, row, log, sized, median }) {
  const load = await figureStart(ctx, '11', 'registry cost per request, GET, signed in, concurrency 50');
  const n = sized(2000, 200);
  const cookies = {
    plain: await app.call('seed', { n, via: 'plain' }),
    reg: await app.call('seed', { n, via: 'reg' }),
  };
  // Both routes must find their sessions (a route that answers as signed out would be fast for nothing).
  for (const via of ['plain', 'reg']) {
    for (const cookie of [cookies[via][0], cookies[via].at(-1)]) {
      const body = await (await fetch(`${base}/${via}/whoami`, { headers: { cookie } })).json();
      if (!body.user) ctx.problems.push(`figure 11: ${via} answered a seeded session as signed out`);
    }
  }
  // Redis round trips per request, each route alone, counted by the app's client.
  const commandsPer = {};
  for (const via of ['plain', 'reg']) {
    const before = await app.call('commands');
    const { ok } = await getLoad(`${base}/${via}/whoami`, cookies[via], { connections: 10, amount: sized(2000, 200) });
    const after = await app.call('commands');
    commandsPer[via] = (after - before) / ok;
  }
  const warm = { connections: 50, amount: sized(4000, 400) };
  await getLoad(`${base}/plain/whoami`, cookies.plain, warm);
  await getLoad(`${base}/reg/whoami`, cookies.reg, warm);
  const ratios = [];
  const rates = { plain: [], reg: [] };
  for (let i = 0; i < sized(5, 1); i += 1) {
    const got = {};
    for (const via of i % 2 ? ['reg', 'plain'] : ['plain', 'reg']) {
      got[via] = await getLoad(`${base}/${via}/whoami`, cookies[via], { connections: 50, amount: sized(10_000, 1000) });
      rates[via].push(got[via].rate);
    }
    ratios.push(got.reg.rate / got.plain.rate);
    log(`  round ${i + 1}: registry ${got.reg.rate.toFixed(0)}/s, bare store ${got.plain.rate.toFixed(0)}/s`);
  }
  figureEnd(load);
  await app.call('flush');
  const extra = commandsPer.reg - commandsPer.plain;
  row(ctx, {
    id: '11',
    figure: '11. registry, GET with a signed-in session: Redis round trips',
    ours: `${commandsPer.reg.toFixed(2)} per request`,
    other: `bare connect-redis ${commandsPer.plain.toFixed(2)}`,
    target: '<= 1 extra',
    pass: extra <= 1.0001,
    load,
    values: { commandsPerRequest: commandsPer, extra },
  });
  const ratio = median(ratios);
  row(ctx, {
    id: '11.rate',
    figure: `    requests/s, registry / bare store, ${ratios.length === 1 ? 'one round' : `median of ${ratios.length} rounds`}`,
    ours: ratio.toFixed(3),
    other: `${median(rates.reg).toFixed(0)}/s vs ${median(rates.plain).toFixed(0)}/s`,
    target: '>= 0.9',
    pass: ratio >= 0.9,
    load,
    values: { ratio, rounds: ratios },
  });
}
