/**
 * The in-memory outbox: a small scheduler for one process. Jobs are kept in a min-heap by due time; one
 * timer wakes the scheduler for the earliest; at most `concurrency` run at once. Everything is lost when
 * the process ends, which is why Redis is the choice for anything with more than one instance.
 */
import type { OutboxCounts } from './types';
import { outboxDebug as debug, reportSettled, runJob, type JobContext, type JobHistory, type StoredJob } from './job';

interface Entry extends JobHistory {
  id: string;
  job: StoredJob;
  dueAt: number;
}

/** setTimeout's limit; longer waits are done in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A binary min-heap of entries by dueAt. */
class DueHeap {
  private readonly items: Entry[] = [];

  get size(): number {
    return this.items.length;
  }

  peek(): Entry | undefined {
    return this.items[0];
  }

  private at(index: number): Entry {
    const entry = this.items[index];
    if (entry === undefined) throw new RangeError('heap index out of range');
    return entry;
  }

  push(entry: Entry): void {
    const items = this.items;
    let i = items.push(entry) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const above = this.at(parent);
      if (above.dueAt <= entry.dueAt) break;
      items[i] = above;
      i = parent;
    }
    items[i] = entry;
  }

  pop(): Entry | undefined {
    const items = this.items;
    const top = items[0];
    const last = items.pop();
    if (top === undefined || last === undefined || items.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= items.length) break;
      const right = left + 1;
      const child = right < items.length && this.at(right).dueAt < this.at(left).dueAt ? right : left;
      const below = this.at(child);
      if (below.dueAt >= last.dueAt) break;
      items[i] = below;
      i = child;
    }
    items[i] = last;
    return top;
  }

  countDue(now: number): number {
    let due = 0;
    for (const entry of this.items) if (entry.dueAt <= now) due += 1;
    return due;
  }
}

export interface MemoryQueue {
  add(id: string, job: StoredJob): void;
  counts(): OutboxCounts;
  close(): Promise<void>;
}

export function createMemoryQueue(ctx: JobContext): MemoryQueue {
  const { concurrency, timeoutMs, onSettled } = ctx.config;
  const ids = new Set<string>();
  const heap = new DueHeap();
  const running = new Set<Promise<void>>();
  let timer: NodeJS.Timeout | undefined;
  let timerDueAt = Number.POSITIVE_INFINITY;
  let closed = false;

  async function run(entry: Entry): Promise<void> {
    try {
      const result = await runJob(ctx, entry.id, entry.job, entry);
      if (result.kind === 'settled') {
        ids.delete(entry.id);
        await reportSettled(onSettled, result.event, timeoutMs);
        return;
      }
      debug(
        '%s attempt %d failed (%s); next in %d ms',
        entry.job.hint,
        result.attempts,
        result.error.code,
        result.delayMs,
      );
      entry.attempts = result.attempts;
      entry.lastError = result.error;
      entry.dueAt = Date.now() + result.delayMs;
      if (closed) ids.delete(entry.id);
      else heap.push(entry);
    } catch (err) {
      // runJob does not throw for Polar's faults; anything else is a bug: keep the job, retry later.
      debug('outbox job run failed unexpectedly: %s', err instanceof Error ? err.name : typeof err);
      entry.dueAt = Date.now() + ctx.config.backoff.initialDelayMs;
      if (!closed) heap.push(entry);
    }
  }

  function pump(): void {
    if (closed) return;
    const now = Date.now();
    while (running.size < concurrency && (heap.peek()?.dueAt ?? Number.POSITIVE_INFINITY) <= now) {
      const entry = heap.pop();
      if (!entry) break;
      const promise = run(entry).finally(() => {
        running.delete(promise);
        pump();
      });
      running.add(promise);
    }
    arm();
  }

  /** One timer, for the earliest job not yet due (none while every slot is busy: a finishing run pumps). */
  function arm(): void {
    const next = heap.peek();
    if (!next || running.size >= concurrency) return disarm();
    if (timer && timerDueAt <= next.dueAt) return;
    disarm();
    timerDueAt = next.dueAt;
    timer = setTimeout(
      () => {
        timer = undefined;
        timerDueAt = Number.POSITIVE_INFINITY;
        pump();
      },
      Math.min(MAX_TIMER_MS, Math.max(0, next.dueAt - Date.now())),
    );
    timer.unref();
  }

  function disarm(): void {
    if (timer) clearTimeout(timer);
    timer = undefined;
    timerDueAt = Number.POSITIVE_INFINITY;
  }

  return {
    add(id, job) {
      if (ids.has(id)) {
        debug('%s already queued; not queued twice', job.hint);
        return;
      }
      ids.add(id);
      heap.push({ id, job, dueAt: Date.now(), attempts: 0, lastError: undefined });
      pump();
    },
    counts() {
      const due = heap.countDue(Date.now());
      return { waiting: due, delayed: heap.size - due, active: running.size };
    },
    async close() {
      closed = true;
      disarm();
      await Promise.all([...running]);
      if (heap.size > 0) debug('closing the in-memory outbox with %d unsettled job(s); they are lost', heap.size);
    },
  };
}
