/**
 * The diagnostics channels (node:diagnostics_channel), created once per process. Publishing is guarded by
 * `hasSubscribers`, so nothing is built for a channel nobody listens to.
 */
import * as dc from 'node:diagnostics_channel';
import { CHANNELS } from './names';
import type { LogoutMessage, OutboxMessage, RevokeMessage } from './types';

type Tracing<T extends object> = dc.TracingChannel<unknown, T>;

/** undefined on a Node without TracingChannel (the guard mysql2 uses too). */
function tracing<T extends object>(name: string): Tracing<T> | undefined {
  return typeof dc.tracingChannel === 'function' ? dc.tracingChannel<unknown, T>(name) : undefined;
}

export const logoutChannel = tracing<LogoutMessage>(CHANNELS.logout);
export const revokeChannel = tracing<RevokeMessage>(CHANNELS.revoke);
export const outboxChannel = dc.channel(CHANNELS.outbox) as dc.Channel<unknown, OutboxMessage>;

/** Whether anyone listens to any of the five events (`hasSubscribers` on TracingChannel arrived in Node 20.13). */
export function isTraced(channel: Tracing<object> | undefined): channel is Tracing<object> {
  if (!channel) return false;
  const all = (channel as { hasSubscribers?: boolean }).hasSubscribers;
  if (typeof all === 'boolean') return all;
  return (
    channel.start.hasSubscribers ||
    channel.end.hasSubscribers ||
    channel.asyncStart.hasSubscribers ||
    channel.asyncEnd.hasSubscribers ||
    channel.error.hasSubscribers
  );
}
