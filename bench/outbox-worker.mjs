// Child process: drains the revocation outbox (createRevocationOutbox from dist) against the stand-in,
// driven over IPC by bench/run.mjs. It has its own event loop, so the stand-in's 50 ms answers and the
// outbox's scheduling do not compete for one thread.
import { performance } from 'node:perf_hooks';
import { serve } from './ipc.mjs';

const { createRevocationOutbox } = await import(new URL('../dist/index.mjs', import.meta.url).href);

const { POLAR_URL: baseUrl, POLAR_CLIENT_ID: clientId, POLAR_CLIENT_SECRET: clientSecret } = process.env;

/** Counts onSettled events by outcome; `finished` resolves at the n-th (rejects after `limitMs`). */
function tally(n, limitMs) {
  const outcomes = {};
  let count = 0;
  let firstAt;
  let done;
  const finished = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${count}/${n} settled in ${limitMs} ms`)), limitMs);
    done = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return {
    outcomes,
    finished,
    firstAt: () => firstAt,
    onSettled(event) {
      firstAt ??= performance.now();
      outcomes[event.outcome] = (outcomes[event.outcome] ?? 0) + 1;
      count += 1;
      if (count === n) done();
    },
  };
}

serve({
  cpu: () => process.cpuUsage(),
  /**
   * Queues `tokens` (access tokens) and times their drain until every one has settled.
   * memory: the in-memory outbox schedules on enqueue, so the clock starts before the first enqueue and
   *   includes enqueueing (sealing) the tokens.
   * redis: a `worker: false` outbox queues them all first; the clock starts at its runWorker() (which
   *   opens the worker's own Redis connection).
   */
  async drain({ tokens, concurrency, redisUrl, limitMs = 60_000 }) {
    const common = { clientId, clientSecret, baseUrl, concurrency };
    const t = tally(tokens.length, limitMs);
    let started;
    let enqueueMs;
    let outboxes = [];
    try {
      if (!redisUrl) {
        const outbox = createRevocationOutbox({ ...common, onSettled: t.onSettled });
        outboxes = [outbox];
        started = performance.now();
        await Promise.all(tokens.map((token) => outbox.enqueue(token, 'access_token')));
        enqueueMs = performance.now() - started;
      } else {
        const producer = createRevocationOutbox({
          ...common,
          redis: redisUrl,
          worker: false,
          onSettled: t.onSettled,
        });
        outboxes = [producer];
        const before = performance.now();
        for (let i = 0; i < tokens.length; i += 200) {
          await Promise.all(tokens.slice(i, i + 200).map((token) => producer.enqueue(token, 'access_token')));
        }
        enqueueMs = performance.now() - before;
        const queued = await producer.counts();
        if (queued.waiting !== tokens.length) throw new Error(`${queued.waiting}/${tokens.length} jobs waiting`);
        started = performance.now();
        await producer.runWorker();
      }
      await t.finished;
      const seconds = (performance.now() - started) / 1000;
      const firstSettledMs = t.firstAt() - started;
      return { seconds, rate: tokens.length / seconds, enqueueMs, firstSettledMs, outcomes: t.outcomes };
    } finally {
      await Promise.all(outboxes.map((outbox) => outbox.close()));
    }
  },
});

process.send({ ready: true });
