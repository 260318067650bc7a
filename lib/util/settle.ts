/**
 * "Settle within N ms": the one shape behind every bounded wait of the library (the audit hook, onSettled, the
 * hand-over to the outbox, Redis calls). A step that is late is not cancelled, only no longer waited for; its
 * later rejection is still handled, so it can never surface as an unhandled rejection (an axios error carries
 * the request body, tokens included).
 */

export type Settled<T> = { kind: 'done'; value: T } | { kind: 'late' } | { kind: 'failed'; error: unknown };

/**
 * Runs `step` now and answers how it settled within `limitMs`: its value, its error (a synchronous throw
 * included), or `late`. Never rejects; the timer is cleared as soon as the answer is known.
 */
export function settleWithin<T>(step: () => T | PromiseLike<T>, limitMs: number): Promise<Settled<T>> {
  return new Promise((resolve) => {
    let answered = false;
    const answer = (outcome: Settled<T>): void => {
      if (answered) return;
      answered = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const timer = setTimeout(() => answer({ kind: 'late' }), limitMs);
    let running: PromiseLike<T>;
    try {
      running = Promise.resolve(step());
    } catch (error) {
      answer({ kind: 'failed', error });
      return;
    }
    running.then(
      (value) => answer({ kind: 'done', value }),
      (error: unknown) => answer({ kind: 'failed', error }),
    );
  });
}

/** An app hook's error for debug: its name and message, which are the app's to keep clean; else only its type. */
export function describeAppError(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : typeof err;
}
