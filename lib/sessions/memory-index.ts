/**
 * The index in this process's memory: one process only (a second process neither sees these sessions nor these
 * marks). Every operation is one synchronous step, hence atomic like the Redis scripts it mirrors.
 */
import { createMemoryTombstones } from '../tombstones';
import type { SessionRef } from './keys';
import { SEEN_EVERY_MS, type IndexEntry, type SessionIndex, type SessionTimes, type Verdict } from './session-index';

interface Entry extends IndexEntry {
  tomb: string;
  expiresAt: number;
}

interface UserRecord {
  entries: Map<string, Entry>;
  mark?: { at: number; except: string | undefined; expiresAt: number };
}

export function createMemoryIndex(): SessionIndex {
  const tombstones = createMemoryTombstones();
  const users = new Map<string, UserRecord>();
  /** tombstone key → where its entry is, so that a destroy() (which knows only the id) removes it. */
  const owners = new Map<string, { user: string; handle: string }>();

  function recordOf(user: string, now: number): UserRecord | undefined {
    const record = users.get(user);
    if (!record) return undefined;
    for (const [handle, entry] of record.entries) {
      if (entry.expiresAt <= now) {
        record.entries.delete(handle);
        owners.delete(entry.tomb);
      }
    }
    if (record.mark && record.mark.expiresAt <= now) delete record.mark;
    if (record.entries.size === 0 && !record.mark) {
      users.delete(user);
      return undefined;
    }
    return record;
  }

  function isEnded(record: UserRecord | undefined, handle: string, createdAt: number | undefined): boolean {
    const mark = record?.mark;
    if (!mark || mark.except === handle) return false;
    // A session the index does not know, while a mark stands: nothing says it began after the mark.
    return createdAt === undefined || createdAt <= mark.at;
  }

  /** Whether there was an entry to remove. */
  function remove(user: string, handle: string): boolean {
    const record = users.get(user);
    const entry = record?.entries.get(handle);
    if (!record || !entry) return false;
    record.entries.delete(handle);
    owners.delete(entry.tomb);
    if (record.entries.size === 0 && !record.mark) users.delete(user);
    return true;
  }

  function write(ref: SessionRef, times: SessionTimes, createdAt: number, userAgent: string | undefined): void {
    let record = users.get(ref.user);
    if (!record) users.set(ref.user, (record = { entries: new Map() }));
    const old = record.entries.get(ref.handle);
    record.entries.set(ref.handle, {
      handle: ref.handle,
      sid: ref.sid,
      tomb: ref.tomb,
      createdAt,
      lastSeenAt: times.now,
      userAgent: old ? old.userAgent : userAgent,
      expiresAt: Math.max(old?.expiresAt ?? 0, times.expiresAt),
    });
    owners.set(ref.tomb, { user: ref.user, handle: ref.handle });
  }

  const copy = ({ handle, sid, createdAt, lastSeenAt, userAgent }: Entry): IndexEntry => ({
    handle,
    sid,
    createdAt,
    lastSeenAt,
    userAgent,
  });

  return {
    add(tomb, ttlMs) {
      void tombstones.add(tomb, ttlMs); // synchronous in memory
      const owner = owners.get(tomb);
      if (owner) remove(owner.user, owner.handle);
    },
    has: (tomb) => tombstones.has(tomb),
    check(ref, times, userAgent): Verdict {
      if (tombstones.has(ref.tomb)) return 'destroyed';
      const record = recordOf(ref.user, times.now);
      const entry = record?.entries.get(ref.handle);
      if (isEnded(record, ref.handle, entry?.createdAt)) return entry ? 'ending' : 'ended';
      if (!entry) write(ref, times, times.now, userAgent);
      else if (times.now - entry.lastSeenAt >= SEEN_EVERY_MS) {
        entry.lastSeenAt = times.now;
        entry.expiresAt = Math.max(entry.expiresAt, times.expiresAt);
      }
      return 'ok';
    },
    admit(ref, times, userAgent): Verdict {
      if (tombstones.has(ref.tomb)) return 'destroyed';
      const record = recordOf(ref.user, times.now);
      const entry = record?.entries.get(ref.handle);
      const createdAt = entry?.createdAt ?? times.createdAt;
      if (isEnded(record, ref.handle, createdAt)) return entry ? 'ending' : 'ended';
      write(ref, times, createdAt, userAgent);
      return 'ok';
    },
    recheck(ref): Verdict {
      if (tombstones.has(ref.tomb)) return 'destroyed';
      const record = users.get(ref.user);
      return isEnded(record, ref.handle, record?.entries.get(ref.handle)?.createdAt) ? 'ended' : 'ok';
    },
    mark(user, now, except, ttlMs) {
      let record = recordOf(user, now);
      if (!record) users.set(user, (record = { entries: new Map() }));
      record.mark = { at: now, except, expiresAt: now + ttlMs };
      return [...record.entries.values()].filter((e) => e.handle !== except).map(copy);
    },
    entries(user, now) {
      return [...(recordOf(user, now)?.entries.values() ?? [])].map(copy);
    },
    drop(ref, _now, tombstoneTtlMs) {
      if (tombstoneTtlMs !== undefined) void tombstones.add(ref.tomb, tombstoneTtlMs);
      return remove(ref.user, ref.handle);
    },
    close: () => Promise.resolve(),
  };
}
