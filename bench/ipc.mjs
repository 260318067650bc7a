// A tiny request/response protocol over the Node IPC channel between the bench and its child processes.

/** In the parent: wraps a forked child; call(cmd, args) resolves with the child's answer. */
export function rpc(child, name) {
  let nextId = 1;
  const pending = new Map();
  child.on('message', (msg) => {
    if (!msg || msg.id === undefined) return;
    const waiter = pending.get(msg.id);
    if (!waiter) return;
    pending.delete(msg.id);
    if (msg.error) waiter.reject(new Error(`${name}: ${msg.error}`));
    else waiter.resolve(msg.result);
  });
  child.on('exit', (code, signal) => {
    for (const waiter of pending.values()) waiter.reject(new Error(`${name} exited (${signal ?? code})`));
    pending.clear();
  });
  return {
    child,
    call(cmd, args = {}) {
      const id = nextId++;
      if (!child.connected) return Promise.reject(new Error(`${name} is not running`));
      return new Promise((resolve, reject) => {
        pending.set(id, { resolve, reject });
        child.send({ id, cmd, args });
      });
    },
  };
}

/** In the child: answers the parent's calls with the handlers (sync or async). */
export function serve(handlers) {
  process.on('message', async (msg) => {
    if (!msg || msg.id === undefined) return;
    const handler = handlers[msg.cmd];
    try {
      if (!handler) throw new Error(`unknown command ${msg.cmd}`);
      process.send({ id: msg.id, result: (await handler(msg.args)) ?? null });
    } catch (err) {
      process.send({ id: msg.id, error: err instanceof Error ? err.message : String(err) });
    }
  });
  // The parent going away ends the child (no orphans holding ports).
  process.on('disconnect', () => process.exit(0));
}
