/**
 * What the suite observes about the process itself. Jest runs test files in a sandbox whose `process` is a
 * copy: unhandled rejections are emitted on the real one, reached here through vm.runInThisContext.
 */
import { format } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';

export const realProcess = vm.runInThisContext('process') as NodeJS.Process;

export interface UnhandledTracker {
  /** Unhandled rejections and uncaught exceptions seen since start. */
  readonly count: number;
  readonly descriptions: string[];
  stop(): void;
}

/** Counts unhandled rejections and uncaught exceptions (Jest also fails the running test for them). */
export function trackUnhandled(): UnhandledTracker {
  const descriptions: string[] = [];
  const onRejection = (reason: unknown): void => void descriptions.push(`unhandledRejection: ${format(reason)}`);
  const onException = (err: unknown): void => void descriptions.push(`uncaughtException: ${format(err)}`);
  realProcess.on('unhandledRejection', onRejection);
  realProcess.on('uncaughtException', onException);
  return {
    get count() {
      return descriptions.length;
    },
    descriptions,
    stop() {
      realProcess.off('unhandledRejection', onRejection);
      realProcess.off('uncaughtException', onException);
    },
  };
}

/** A full garbage collection, without starting node with --expose-gc. */
export const collectGarbage: () => void = (() => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

/** Everything written to stderr while active (debug modules of every version write there), without echoing it. */
export function captureStderr(): { readonly text: () => string; stop(): void } {
  const stream = process.stderr;
  const original = stream.write;
  const chunks: string[] = [];
  stream.write = function write(chunk: unknown, ...rest: unknown[]): boolean {
    chunks.push(typeof chunk === 'string' ? chunk : Buffer.from(chunk as Uint8Array).toString('utf8'));
    const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  };
  return {
    text: () => chunks.join(''),
    stop() {
      stream.write = original;
    },
  };
}
