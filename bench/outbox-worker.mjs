// Child process: drains the revocation outbox (createRevocationOutbox from dist) against the stand-in,
// driven over IPC by bench/run.mjs. It has its own event loop, so the stand-in's 50 ms answers and the
// outbox's scheduling do not compete for one thread.
import { performance } from 'node:perf_hooks';
import { serve } from './ipc.mjs';

const { createRevocationOutbox } = await import(new URL('../dist/index.mjs', import.meta.url).href);

const { POLAR_URL: baseUrl, POLAR_CLIENT_ID: clientId, POLAR_CLIENT_SECRET: clientSecret } = process.env;

/** The Redis worker started by work(), and what it has settled (figure 7's rate-limited drain). */
let working;

serve({
  cpu: () => process.cpuUsage(),
  /**
   * Figure 7, producer side: queues `tokens` on the Redis outbox (`worker: false`) under `rateLimit`, then
   * closes. Returns how long enqueueing took.
   */
  async enqueue({ tokens, redisUrl, rateLimit, concurrency }) {
    const producer = createRevocationOutbox({
      clientId,
      clientSecret,
      baseUrl,
      concurrency,
      rateLimit,
      redis: redisUrl,
      worker: false,
    });
    try {
      const before = performance.now();
      for (let i = 0; i < tokens.length; i += 200) {
        await Promise.all(tokens.slice(i, i + 200).map((token) => producer.enqueue(token, 'access_token')));
      }
      const queued = await producer.counts();
      if (queued.waiting !== tokens.length) throw new Error(`${queued.waiting}/${tokens.length} jobs waiting`);
      return { enqueueMs: performance.now() - before };
    } finally {
      await producer.close();
    }
  },
  /**
   * Figure 7, worker side: one BullMQ worker in this process on the shared Redis, drawing from the rate budget
   * that every process on that Redis shares. Resolves once it takes jobs.
   */
  async work({ redisUrl, rateLimit, concurrency }) {
    if (working) throw new Error('already working');
    const outcomes = {};
    const outbox = createRevocationOutbox({
      clientId,
      clientSecret,
      baseUrl,
      concurrency,
      rateLimit,
      redis: redisUrl,
      worker: false,
      onSettled: (event) => {
        outcomes[event.outcome] = (outcomes[event.outcome] ?? 0) + 1;
      },
    });
    working = { outbox, outcomes };
    await outbox.runWorker();
  },
  /** What this process's worker has settled so far, by outcome. */
  settled: () => working?.outcomes ?? {},
  async stopWork() {
    const current = working;
    working = undefined;
    await current?.outbox.close();
  },
});

process.send({ ready: true });
