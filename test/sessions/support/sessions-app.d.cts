import type { Express } from 'express';
import type { Store } from 'express-session';

export declare const COOKIE_SECRET: string;
export interface SessionsAppOptions {
  store: Store;
  sessions: unknown;
  polar: { clientId: string; clientSecret: string; baseUrl: string };
  outbox?: unknown;
  rateLimit?: { requests: number; perMs: number };
  redis?: unknown;
  timeoutMs?: number;
  print: (record: Record<string, unknown>) => void;
}
export declare function createSessionsApp(lib: unknown, options: SessionsAppOptions): { app: Express; close(): void };
