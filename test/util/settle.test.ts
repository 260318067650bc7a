import { settleWithin } from '../../lib/util/settle';

describe('settleWithin', () => {
  it('answers the value of a step that settles in time, sync or async', async () => {
    await expect(settleWithin(() => 7, 1000)).resolves.toEqual({ kind: 'done', value: 7 });
    await expect(settleWithin(() => Promise.resolve('x'), 1000)).resolves.toEqual({ kind: 'done', value: 'x' });
  });

  it('answers the error of a step that throws or rejects, never rejecting itself', async () => {
    const boom = new Error('boom');
    await expect(
      settleWithin(() => {
        throw boom;
      }, 1000),
    ).resolves.toEqual({ kind: 'failed', error: boom });
    await expect(settleWithin(() => Promise.reject(boom), 1000)).resolves.toEqual({ kind: 'failed', error: boom });
  });

  it('answers late for a step that does not settle in time, and still handles its later rejection', async () => {
    let reject!: (err: Error) => void;
    const step = new Promise<never>((_resolve, r) => (reject = r));
    // (jest's sandboxed `process` does not see unhandledRejection: check that a rejection handler is attached.)
    const then = jest.spyOn(step, 'then');
    await expect(settleWithin(() => step, 20)).resolves.toEqual({ kind: 'late' });
    expect(then).toHaveBeenCalledWith(expect.any(Function), expect.any(Function));
    reject(new Error('late failure'));
    await new Promise((resolve) => setTimeout(resolve, 20));
  });

  it('clears its timer once answered, so it holds no timer open', async () => {
    const clear = jest.spyOn(global, 'clearTimeout');
    try {
      await settleWithin(() => 1, 60_000);
      expect(clear).toHaveBeenCalledTimes(1);
    } finally {
      clear.mockRestore();
    }
  });
});
