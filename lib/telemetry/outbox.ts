/**
 * Telemetry of the revocation outbox: a message on `express-polar-logout:outbox` and a settlement count per
 * queued token settled, and the depth gauge (waiting, delayed, active) read through `counts()` at collection.
 */
import type { OutboxSettledEvent } from '../outbox/types';
import { outboxChannel } from './channels';
import { ATTR } from './names';
import { openTelemetry, type ObservedOutbox } from './otel';
import type { OutboxMessage } from './types';

/** Called where a queued token settles, before the onSettled hook; never throws. */
export function publishSettled(event: OutboxSettledEvent): void {
  try {
    const instruments = openTelemetry()?.instruments();
    if (instruments) {
      const attributes: Record<string, string> = { [ATTR.outcome]: event.outcome, [ATTR.tokenType]: event.tokenType };
      if (event.error) attributes[ATTR.errorType] = event.error.code;
      instruments.outboxSettlements.add(1, attributes);
    }
    if (!outboxChannel.hasSubscribers) return;
    // A copy: a subscriber that changes it cannot change what onSettled receives.
    const message: OutboxMessage = {
      tokenType: event.tokenType,
      outcome: event.outcome,
      attempts: event.attempts,
      queuedAt: event.queuedAt,
      settledAt: event.settledAt,
      sessionIdHash: event.sessionIdHash,
      durationMs: Math.max(0, Date.parse(event.settledAt) - Date.parse(event.queuedAt)),
    };
    if (event.error) message.error = { ...event.error };
    outboxChannel.publish(message);
  } catch {
    // Telemetry never changes how a job settles.
  }
}

type Outbox = ObservedOutbox & {
  enqueue(...args: never[]): Promise<void>;
  close(): Promise<void>;
};

/**
 * Reports the outbox's depth in the gauge until it is closed, and detaches its work from the caller's trace
 * (the in-memory queue starts a job inside enqueue(): its calls, retries included, would otherwise all be
 * children of a logout span that ended long before). Returns the same outbox.
 */
export function observeOutbox<T extends Outbox>(outbox: T): T {
  const otel = openTelemetry();
  if (!otel) return outbox;
  const forget = otel.observeOutbox(outbox);
  const enqueue = outbox.enqueue.bind(outbox);
  const { context, ROOT_CONTEXT } = otel.api;
  outbox.enqueue = (...args) => context.with(ROOT_CONTEXT, () => enqueue(...args));
  const close = outbox.close.bind(outbox);
  outbox.close = () => {
    forget();
    return close();
  };
  return outbox;
}
