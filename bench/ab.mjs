#!/usr/bin/env node
// Compares two builds of the library (or two routes) on the same harness, for questions such as "does this change
// add waiting to a logout?". Each side has its own stand-in process answering after --latency ms and its own app
// process (bench/app.mjs, with the build's dist/ through EPL_DIST). Logouts run one after the other, or
// --connections at a time, in rounds whose order flips each round; or, with --steady=R, both sides at once at R
// logouts a second each (open loop). Either way a busy moment on a shared machine hits both sides alike. Reports per
// side the p50, p95, p99 and mean of all samples, the app's and the stand-in's CPU per logout, and the median of
// the per-round differences of p50 (b - a).
//
//   node bench/ab.mjs [--a=<dist>] [--b=<dist>] [--path-a=/logout] [--path-b=/logout] [--latency=100]
//                     [--rounds=10] [--n=40] [--connections=1] [--steady=R] [--mode=route|revoker]
//                     [--stand-in-a=<dist>] [--stand-in-b=<dist>] [--prof] [--strace]
//
//   --a, --b          the builds' dist/ directories (default: this checkout's dist/ for both)
//   --path-a, -b      the route each side is measured on (--path-a=/reference-logout: ours against the reference)
//   --mode=revoker    createPolarRevoker().revoke() alone, timed inside the app process, instead of POST /logout
//   --stand-in-a, -b  the build whose stand-in (dist/testing) a side runs (default B's: one stand-in code for both)
//   --prof            V8's profiler in both apps over the measured rounds only; summaries printed, profiles kept
//                     in bench/.profiles
//   --strace          the apps' system calls over the measured rounds (strace -c), per logout
import { fork, spawn } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import http from 'node:http';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { rpc } from './ipc.mjs';
import { steadyLogouts } from './steady.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');
const opt = (name, fallback) => {
  const found = process.argv.find((a) => a.startsWith(`--${name}=`));
  return found === undefined ? fallback : found.slice(name.length + 3);
};
const A = opt('a', join(root, 'dist'));
const B = opt('b', join(root, 'dist'));
const PATH_A = opt('path-a', '/logout');
const PATH_B = opt('path-b', '/logout');
const STAND_IN_A = opt('stand-in-a', B);
const STAND_IN_B = opt('stand-in-b', B);
const LATENCY = Number(opt('latency', 100));
const ROUNDS = Number(opt('rounds', 10));
const N = Number(opt('n', 40));
const CONNECTIONS = Number(opt('connections', 1));
const STEADY = Number(opt('steady', 0));
const MODE = opt('mode', 'route');
const PROF = process.argv.includes('--prof');
const STRACE = process.argv.includes('--strace');
const profileDir = join(here, '.profiles');

const children = [];
function start(script, env = {}) {
  const child = fork(join(here, script), [], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return new Promise((ok, fail) => {
    child.once('error', fail);
    child.once('message', (msg) =>
      msg?.ready ? ok({ ...rpc(child, script), info: msg }) : fail(new Error('bad hello')),
    );
  });
}

const quantile = (sorted, q) => {
  const pos = (sorted.length - 1) * q;
  const lo = Math.floor(pos);
  return sorted[lo] + (sorted[Math.ceil(pos)] - sorted[lo]) * (pos - lo);
};
const sortNum = (xs) => [...xs].sort((x, y) => x - y);

/** POSTs /logout with each cookie, `connections` at a time on keep-alive sockets; answers the durations. */
async function logouts(port, path, cookies) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const times = [];
  let next = 0;
  const one = (cookie) =>
    new Promise((ok, fail) => {
      const began = performance.now();
      const req = http.request(
        { host: '127.0.0.1', port, path, method: 'POST', agent, headers: { cookie, accept: 'text/html' } },
        (res) => {
          res.resume();
          res.once('end', () => {
            if (res.statusCode !== 303) fail(new Error(`answered ${res.statusCode}`));
            else ok(performance.now() - began);
          });
        },
      );
      req.once('error', fail);
      req.end();
    });
  const lane = async () => {
    while (next < cookies.length) times.push(await one(cookies[next++]));
  };
  await Promise.all(Array.from({ length: CONNECTIONS }, lane));
  agent.destroy();
  return times;
}

async function main() {
  const startBuild = async (name, dist, path, standIn) => {
    const polar = await start('stand-in.mjs', { EPL_DIST: resolve(standIn) });
    await polar.call('latency', { ms: LATENCY });
    const app = await start('app.mjs', {
      EPL_DIST: resolve(dist),
      POLAR_URL: polar.info.url,
      POLAR_CLIENT_ID: polar.info.clientId,
      POLAR_CLIENT_SECRET: polar.info.clientSecret,
    });
    return { name, dist, path, standIn, polar, app, samples: [], medians: [], cpuMs: 0, polarCpuMs: 0 };
  };
  const builds = [await startBuild('a', A, PATH_A, STAND_IN_A), await startBuild('b', B, PATH_B, STAND_IN_B)];
  const cpuOf = async (child) => {
    const { user, system } = await child.call('cpu');
    return (user + system) / 1000;
  };
  /** n logouts; the app's and the stand-in's CPU time over them is added to the build's totals. */
  const measure = async (build, n) => {
    const tokens = await build.polar.call('issue', { n });
    const cookies = MODE === 'revoker' ? undefined : await build.app.call('seed', { tokens });
    const before = await Promise.all([cpuOf(build.app), cpuOf(build.polar)]);
    const times =
      MODE === 'revoker'
        ? await build.app.call('revokeTimes', { tokens, parallel: CONNECTIONS })
        : await logouts(build.app.info.port, build.path, cookies);
    const after = await Promise.all([cpuOf(build.app), cpuOf(build.polar)]);
    build.cpuMs += after[0] - before[0];
    build.polarCpuMs += after[1] - before[1];
    return times;
  };
  for (const build of builds) await measure(build, 20); // warm-up: JIT, pools
  for (const build of builds) build.cpuMs = build.polarCpuMs = 0;
  const profileOf = (b) => join(profileDir, `ab-${b.name}-${process.pid}.cpuprofile`);
  if (PROF) {
    mkdirSync(profileDir, { recursive: true });
    for (const b of builds) await b.app.call('profileStart');
  }
  /** Both builds at once, at STEADY logouts a second each: the same moments of a busy machine hit both. */
  const measureBoth = async (n) => {
    const prepared = await Promise.all(
      builds.map(async (b) => ({
        b,
        cookies: await b.app.call('seed', { tokens: await b.polar.call('issue', { n }) }),
      })),
    );
    const before = await Promise.all(builds.map((b) => Promise.all([cpuOf(b.app), cpuOf(b.polar)])));
    const results = await Promise.all(
      prepared.map(({ b, cookies }) =>
        steadyLogouts({ url: `http://127.0.0.1:${b.app.info.port}${b.path}`, cookies, perSecond: STEADY }),
      ),
    );
    const after = await Promise.all(builds.map((b) => Promise.all([cpuOf(b.app), cpuOf(b.polar)])));
    builds.forEach((b, i) => {
      b.cpuMs += after[i][0] - before[i][0];
      b.polarCpuMs += after[i][1] - before[i][1];
      if ((results[i].statuses[303] ?? 0) !== n) throw new Error(`${b.name}: ${JSON.stringify(results[i].statuses)}`);
    });
    return results.map((r) => r.durations);
  };
  const traces = STRACE
    ? builds.map((b) => {
        const file = join(profileDir, `ab-${b.name}-${process.pid}.strace`);
        mkdirSync(profileDir, { recursive: true });
        const tracer = spawn('strace', ['-f', '-c', '-o', file, '-p', String(b.app.child.pid)], { stdio: 'ignore' });
        return { b, file, tracer, exited: new Promise((ok) => tracer.once('exit', ok)) };
      })
    : [];
  if (STRACE) await new Promise((ok) => setTimeout(ok, 1000)); // attached
  const diffs = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    const cpuBefore = builds.map((b) => b.cpuMs);
    if (STEADY) {
      const both = await measureBoth(N);
      builds.forEach((b, i) => {
        b.samples.push(...both[i]);
        b.medians.push(quantile(sortNum(both[i]), 0.5));
      });
    } else {
      for (const build of round % 2 ? [...builds].reverse() : builds) {
        const times = await measure(build, N);
        build.samples.push(...times);
        build.medians.push(quantile(sortNum(times), 0.5));
      }
    }
    diffs.push(builds[1].medians.at(-1) - builds[0].medians.at(-1));
    // The round's app CPU per logout too: a trend across rounds (something that grows) shows here.
    const cpu = builds.map((b, i) => ((b.cpuMs - cpuBefore[i]) / N).toFixed(3));
    console.error(
      `round ${round + 1}: a p50 ${builds[0].medians.at(-1).toFixed(2)} ms, b p50 ${builds[1].medians.at(-1).toFixed(2)} ms; app CPU per logout a ${cpu[0]} ms, b ${cpu[1]} ms`,
    );
  }
  console.log(
    `mode ${MODE}, stand-in ${LATENCY} ms, ${STEADY ? `both at once at ${STEADY}/s each` : `${CONNECTIONS} at a time, interleaved`}, ${ROUNDS} rounds of ${N} per build`,
  );
  for (const b of builds) {
    const s = sortNum(b.samples);
    console.log(
      `  ${b.name} (${b.dist}${MODE === 'route' ? ` ${b.path}` : ''}, stand-in ${b.standIn}): p50 ${quantile(s, 0.5).toFixed(2)} ms, p95 ${quantile(s, 0.95).toFixed(2)} ms, p99 ${quantile(s, 0.99).toFixed(2)} ms, mean ${(s.reduce((x, y) => x + y, 0) / s.length).toFixed(2)} ms, n ${s.length}; CPU per logout: app ${(b.cpuMs / s.length).toFixed(3)} ms, stand-in ${(b.polarCpuMs / s.length).toFixed(3)} ms`,
    );
  }
  const d = sortNum(diffs);
  console.log(
    `  b - a, median of round differences: ${quantile(d, 0.5).toFixed(2)} ms (range ${d[0].toFixed(2)} to ${d.at(-1).toFixed(2)})`,
  );
  for (const { b, file, tracer, exited } of traces) {
    tracer.kill('SIGINT');
    await exited;
    const n = b.samples.length;
    const lines = readFileSync(file, 'utf8')
      .split('\n')
      .filter((l) => /^\s*\d/.test(l))
      .map((l) => l.trim().split(/\s+/))
      .filter((f) => f.length >= 5)
      .map((f) => ({ name: f.at(-1), calls: Number(f[3]), seconds: Number(f[1]) }))
      .filter((x) => x.name !== 'total')
      .sort((x, y) => y.calls - x.calls);
    console.log(`\n--- ${b.name} system calls per logout (${file}):`);
    for (const x of lines.slice(0, 15)) console.log(`  ${(x.calls / n).toFixed(2).padStart(7)}  ${x.name}`);
  }
  if (PROF) {
    const { summariseProfile } = await import('./profile-summary.mjs');
    for (const b of builds) {
      await b.app.call('profileStop', { file: profileOf(b) });
      console.log(`\n--- ${b.name}: ${profileOf(b)}\n${summariseProfile(profileOf(b), 30)}`);
    }
  }
  for (const b of builds) {
    await b.app.call('close').catch(() => {});
    b.polar.child.kill();
  }
}

main().catch((err) => {
  // The stack only (name, message, frames): printing the error object would print its fields, and an axios
  // error's config holds the request body, hence the client secret and a token.
  console.error(err instanceof Error ? err.stack : `failed: ${typeof err}`);
  for (const c of children) c.kill();
  process.exit(1);
});
