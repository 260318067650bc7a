import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

export declare const REDIS_SERVER_BIN: string;
export declare function redisServerAvailable(): boolean;
export declare function freePort(): Promise<number>;
export interface SpawnedRedisServer {
  readonly child: ChildProcessByStdio<null, Readable, Readable>;
  readonly url: string;
  readonly port: number;
  readonly dir: string;
  output(): string;
  kill(): Promise<void>;
  stop(): Promise<void>;
}
export declare function spawnRedisServer(port: number, extraArgs?: string[], dir?: string): SpawnedRedisServer;
export declare function spawnSentinel(port: number, masterName: string, masterPort: number): SpawnedRedisServer;
