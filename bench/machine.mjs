// The machine a figure ran on, and how busy it was when the figure started. The kernel's one-minute load
// average also counts this benchmark's own previous figures, so each figure samples the load itself: the
// number of runnable tasks (/proc/loadavg, 4th field), averaged over a second in which the bench's own
// processes are idle. A figure that starts with more runnable tasks than cores is not reported as a PASS.
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg } from 'node:os';

export function machine() {
  return {
    cpu: cpus()[0]?.model.trim() ?? 'unknown CPU',
    cores: availableParallelism(),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  };
}

/** Runnable tasks right now, not counting this (reading) thread; undefined off Linux. */
function runnable() {
  try {
    const [running] = readFileSync('/proc/loadavg', 'utf8').split(' ')[3].split('/');
    return Math.max(0, Number(running) - 1);
  } catch {
    return undefined;
  }
}

/**
 * The load when a figure starts: runnable tasks averaged over `ms` (every 20 ms) while the bench is idle,
 * and the kernel's one-minute average for reference. Off Linux, the one-minute average stands for both.
 */
export async function sampleLoad(ms = 1000) {
  const samples = [];
  for (const end = Date.now() + ms; Date.now() < end;) {
    const n = runnable();
    if (n === undefined) break;
    samples.push(n);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const oneMinute = loadavg()[0];
  const sampled = samples.length ? samples.reduce((a, b) => a + b, 0) / samples.length : oneMinute;
  return { sampled, oneMinute, busy: sampled > machine().cores };
}
