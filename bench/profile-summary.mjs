// Summarises a V8 .cpuprofile: where the sampled time went, by package, by function (self time), and
// the library's own functions with their inclusive time (what the function and everything it calls cost).
//   node bench/profile-summary.mjs bench/.profiles/CPU.....cpuprofile
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

function bucketOf(url, functionName) {
  if (!url)
    return functionName === '(idle)'
      ? '(idle)'
      : functionName === '(garbage collector)'
        ? '(gc)'
        : `(${functionName || 'native'})`;
  const pkg = url.match(/node_modules\/((?:@[^/]+\/)?[^/]+)/);
  if (pkg) return pkg[1];
  if (url.includes('/dist/')) return 'express-polar-logout (dist)';
  if (url.includes('/bench/')) return 'bench harness';
  if (url.startsWith('node:')) return 'node core';
  return url;
}

const short = (url) =>
  url
    .replace(/^.*node_modules\//, '')
    .replace(/^.*\/dist\//, 'dist/')
    .replace(/^file:\/\//, '');

export function summariseProfile(file, top = 25) {
  const profile = JSON.parse(readFileSync(file, 'utf8'));
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const self = new Map(); // node id -> µs
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

  const keyOf = (n) =>
    `${n.callFrame.functionName || '(anonymous)'}  ${short(n.callFrame.url)}:${n.callFrame.lineNumber + 1}`;
  let total = 0;
  let idle = 0;
  const buckets = new Map();
  const functions = new Map();
  const inclusive = new Map();
  for (const [id, us] of self) {
    const node = byId.get(id);
    total += us;
    const { url, functionName } = node.callFrame;
    if (functionName === '(idle)') idle += us;
    const bucket = bucketOf(url, functionName);
    buckets.set(bucket, (buckets.get(bucket) ?? 0) + us);
    functions.set(keyOf(node), (functions.get(keyOf(node)) ?? 0) + us);
    // Inclusive time for the library's frames: every distinct library function on this sample's stack.
    const seen = new Set();
    for (let cur = id; cur !== undefined; cur = parent.get(cur)) {
      const frame = byId.get(cur);
      if (!frame.callFrame.url.includes('/dist/')) continue;
      const key = keyOf(frame);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + us);
    }
  }
  const busy = total - idle;
  const pct = (us) => `${((us / busy) * 100).toFixed(1).padStart(5)} %`;
  const list = (map, n) =>
    [...map]
      .filter(([k]) => k !== '(idle)' && !k.startsWith('(idle)'))
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, us]) => `  ${pct(us)}  ${k}`)
      .join('\n');
  return [
    `busy ${(busy / 1e6).toFixed(2)} s of ${(total / 1e6).toFixed(2)} s sampled (percentages are of busy time)`,
    '\nby package:',
    list(buckets, 15),
    `\nby function, self time (top ${top}):`,
    list(functions, top),
    '\nlibrary functions, inclusive time:',
    list(inclusive, 20),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (!process.argv[2]) {
    console.error('usage: node bench/profile-summary.mjs FILE.cpuprofile');
    process.exit(2);
  }
  console.log(summariseProfile(process.argv[2]));
}
