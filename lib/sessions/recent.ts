/**
 * Sessions this process has recently checked: tombstone key → the user id and the index names (handle, user key)
 * of the session. A memo of pure functions (the handle is a hash of the session id, the user key a hash of the user
 * id), so it can never be wrong, only missing: the store uses it to ask the index together with the store's own
 * read, before the session's data (and so its user) is known, and confirms the user once the data is there. Keyed
 * by the tombstone key and holding no session id, so that a heap snapshot shows no more than Redis does.
 *
 * Two generations of at most `limit / 2` entries each: a lookup promotes an entry of the older one, and the older
 * one is dropped whole when the newer one is full. O(1) per operation, no per-entry bookkeeping.
 */
export interface RecentSession {
  userId: string;
  handle: string;
  user: string;
}

export class RecentSessions {
  private current = new Map<string, RecentSession>();
  private previous = new Map<string, RecentSession>();
  private readonly half: number;

  constructor(limit: number) {
    this.half = Math.max(1, Math.floor(limit / 2));
  }

  get(tomb: string): RecentSession | undefined {
    const found = this.current.get(tomb);
    if (found !== undefined) return found;
    const older = this.previous.get(tomb);
    if (older !== undefined) this.remember(tomb, older);
    return older;
  }

  remember(tomb: string, session: RecentSession): void {
    this.current.set(tomb, session);
    if (this.current.size >= this.half) {
      this.previous = this.current;
      this.current = new Map();
    }
  }
}
