// The machine a figure ran on, and how busy it was. The kernel's one-minute load average also counts this
// benchmark's own previous figures, so each figure samples the load itself: the number of runnable tasks
// (/proc/loadavg, 4th field), averaged over a second in which the bench's own processes are idle. A figure
// that starts with more runnable tasks than cores is not reported as a PASS; nor is one during which other
// processes used more than half the machine's CPU (a load that arrived after the figure started).
import { readFileSync, readdirSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
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
  return { sampled, oneMinute, busy: sampled > machine().cores, ticks: cpuTicks() };
}

/** Linux reports CPU time in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const TICKS_PER_S = 100;

/**
 * CPU ticks (user, nice, system, steal: what other work takes from us) of the whole machine, and of this
 * process and its descendants (app, stand-in, outbox worker, redis-server). Undefined off Linux.
 */
function cpuTicks() {
  try {
    const [user, nice, system, , , , , steal] = readFileSync('/proc/stat', 'utf8')
      .split('\n', 1)[0]
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    const children = new Map();
    const own = new Map();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      let stat;
      try {
        stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      } catch {
        continue; // exited meanwhile
      }
      // Fields after the command name, which may contain spaces: state ppid ... utime(12th) stime(13th).
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const ppid = Number(rest[1]);
      own.set(Number(name), Number(rest[11]) + Number(rest[12]));
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push(Number(name));
    }
    let ours = 0;
    for (const queue = [process.pid]; queue.length;) {
      const pid = queue.pop();
      ours += own.get(pid) ?? 0;
      queue.push(...(children.get(pid) ?? []));
    }
    return { at: performance.now(), machine: user + nice + system + steal, ours };
  } catch {
    return undefined;
  }
}

/**
 * Ends a figure's window: the cores other processes kept busy while it ran (machine CPU minus the bench's
 * own); above half the cores, the figure is BUSY too. Call it before the bench's processes of that figure exit.
 */
export function endLoad(load) {
  const end = cpuTicks();
  if (!load.ticks || !end) return load;
  const seconds = (end.at - load.ticks.at) / 1000;
  const others = (end.machine - load.ticks.machine - (end.ours - load.ticks.ours)) / TICKS_PER_S / seconds;
  load.others = Math.max(0, others);
  if (load.others > machine().cores / 2) load.busy = true;
  return load;
}
