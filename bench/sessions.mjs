// Figures 10 and 11: the session registry (log out everywhere). Called by run.mjs with its helpers, so that the
// figures join the one table; the app (bench/sessions-app.mjs) and its redis-server are this module's own.
//
// 10. Log out everywhere for a user with 100 sessions, the stand-in answering at once: the time of the whole
//    request (200 tokens revoked, 100 sessions ended) and the calls Polar received. Reported.
// 11. The registry's cost on requests that do not modify the session (GET, a signed-in session): Redis commands
//    per request beyond connect-redis's own (target: at most 1, the tombstone and "not before" checks together),
//    Redis's CPU per request (reported), and requests per app CPU-second with the registry over without it
//    (target >= 0.9), run together: two fresh app processes pinned to one core, loaded at the same time, one
//    through the bare store and one through the registry, swapping every round.
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
  const { start, stopping, figureStart, figureEnd, row, log, sized, median, startRedis, pinTogether } = tools;
  const redis = await startRedis();
  if (!redis) {
    ctx.problems.push('figures 10 and 11: no redis-server to run (apt-get install redis-server)');
    return;
  }
  const env = {
    POLAR_URL: ctx.polar.info.url,
    POLAR_CLIENT_ID: ctx.polar.info.clientId,
    POLAR_CLIENT_SECRET: ctx.polar.info.clientSecret,
    REDIS_URL: redis.url,
  };
  // An app process of its own; stop() ends it (`stopping` keeps start()'s watchdog quiet meanwhile).
  const startApp = async () => {
    const one = await start('sessions-app.mjs', { env });
    one.stop = async () => {
      stopping(true);
      await one.call('close').catch(() => {});
      await new Promise((resolve) => (one.child.exitCode === null ? one.child.once('exit', resolve) : resolve()));
      stopping(false);
    };
    return one;
  };
  const app = await startApp();
  const base = `http://127.0.0.1:${app.info.port}`;
  const figureTools = { app, base, figureStart, figureEnd, row, log, sized, median, startApp, pinTogether, redis };
  try {
    await everywhereFigure(ctx, figureTools);
    await costFigure(ctx, figureTools);
  } finally {
    await app.stop();
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

async function costFigure(ctx, { app, base, figureStart, figureEnd, row, log, sized, startApp, pinTogether, redis }) {
  const load = await figureStart(ctx, '11', 'registry cost per request, GET, signed in, run together');
  const n = sized(2000, 200);
  const seedBoth = async (target) => ({
    plain: await target.call('seed', { n, via: 'plain' }),
    reg: await target.call('seed', { n, via: 'reg' }),
  });
  const cookies = await seedBoth(app);
  // Both routes must find their sessions (a route that answers as signed out would be fast for nothing).
  for (const via of ['plain', 'reg']) {
    for (const cookie of [cookies[via][0], cookies[via].at(-1)]) {
      const body = await (await fetch(`${base}/${via}/whoami`, { headers: { cookie } })).json();
      if (!body.user) ctx.problems.push(`figure 11: ${via} answered a seeded session as signed out`);
    }
  }
  // Redis round trips per request, each route alone, counted by the app's client; and Redis's CPU per request.
  const commandsPer = {};
  const redisCpuPer = {};
  for (const via of ['plain', 'reg']) {
    const [before, cpuBefore] = [await app.call('commands'), await app.call('redisCpu')];
    const { ok } = await getLoad(`${base}/${via}/whoami`, cookies[via], { connections: 10, amount: sized(2000, 200) });
    const [after, cpuAfter] = [await app.call('commands'), await app.call('redisCpu')];
    commandsPer[via] = (after - before) / ok;
    redisCpuPer[via] = (cpuAfter - cpuBefore) / ok;
  }
  // The cost to the app, run together: two fresh app processes on one core, one loaded through the bare store and
  // the other through the registry at the same time, swapping every round (see run.mjs's togetherRounds).
  const pair = await Promise.all([startApp(), startApp()]);
  const pairCookies = await Promise.all(pair.map(seedBoth));
  const pinned = pinTogether(pair, [ctx.polar, redis]);
  const rounds = [];
  try {
    for (let i = -3; i < sized(8, 1); i += 1) {
      const odd = Math.abs(i) % 2 === 1;
      const [plainAt, regAt] = odd ? [1, 0] : [0, 1];
      const sides = [
        { via: 'plain', at: plainAt },
        { via: 'reg', at: regAt },
      ];
      if (odd) sides.reverse();
      const amount = sized(6000, 600);
      const got = {};
      await Promise.all(
        sides.map(async ({ via, at }) => {
          const target = pair[at];
          const cpuBefore = await target.call('cpu');
          const url = `http://127.0.0.1:${target.info.port}/${via}/whoami`;
          const { rate, ok } = await getLoad(url, pairCookies[at][via], { connections: 25, amount });
          const cpuAfter = await target.call('cpu');
          const cpuUs = cpuAfter.user + cpuAfter.system - cpuBefore.user - cpuBefore.system;
          if (ok !== amount) ctx.problems.push(`figure 11: ${via} answered ${ok} of ${amount} GETs with 200`);
          got[via] = { rate, cpuPerRequestUs: cpuUs / Math.max(1, ok) };
        }),
      );
      if (i < 0) continue;
      const ratio = got.plain.cpuPerRequestUs / got.reg.cpuPerRequestUs;
      rounds.push({ ...got, ratio });
      log(
        `  round ${i + 1}: registry ${got.reg.cpuPerRequestUs.toFixed(0)} µs CPU/request (${got.reg.rate.toFixed(0)}/s), bare store ${got.plain.cpuPerRequestUs.toFixed(0)} µs (${got.plain.rate.toFixed(0)}/s), ratio ${ratio.toFixed(3)}`,
      );
    }
    // Before the pair exits: the CPU of processes that have ended would count as other processes' work.
    figureEnd(load);
  } finally {
    pinned.release();
    for (const one of pair) await one.stop();
  }
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
  row(ctx, {
    id: '11.redis',
    figure: '    Redis CPU per request, registry / bare store',
    ours: `${redisCpuPer.reg.toFixed(1)} µs`,
    other: `bare connect-redis ${redisCpuPer.plain.toFixed(1)} µs`,
    target: 'report',
    load,
    values: { redisCpuPerRequestUs: redisCpuPer },
  });
  rounds.sort((x, y) => x.ratio - y.ratio);
  const mid = rounds[Math.floor(rounds.length / 2)];
  row(ctx, {
    id: '11.rate',
    figure: `    requests per app CPU-second, registry / bare store, run together, ${rounds.length === 1 ? 'one round' : `median of ${rounds.length}`}`,
    ours: `${mid.ratio.toFixed(3)} (${mid.reg.cpuPerRequestUs.toFixed(0)} vs ${mid.plain.cpuPerRequestUs.toFixed(0)} µs)`,
    other: `rounds ${rounds[0].ratio.toFixed(2)} to ${rounds.at(-1).ratio.toFixed(2)}`,
    target: '>= 0.9',
    pass: mid.ratio >= 0.9,
    load,
    values: { ratio: mid.ratio, rounds: rounds.map((r) => r.ratio), median: mid },
  });
}
