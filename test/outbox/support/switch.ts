/**
 * A loopback port in front of the Polar stand-in that can refuse connections: down() closes the listener
 * (ECONNREFUSED, as when Polar is unreachable), up() listens again on the same port and forwards.
 */
import net from 'node:net';

export interface PortSwitch {
  readonly url: string;
  up(): Promise<void>;
  down(): Promise<void>;
  close(): Promise<void>;
}

export async function startSwitch(targetUrl: string): Promise<PortSwitch> {
  const target = new URL(targetUrl);
  const sockets = new Set<net.Socket>();
  let server: net.Server | undefined;
  let port = 0;

  function listen(): Promise<void> {
    const s = net.createServer((client) => {
      const upstream = net.connect(Number(target.port), target.hostname);
      for (const socket of [client, upstream]) {
        sockets.add(socket);
        socket.on('close', () => sockets.delete(socket));
        socket.on('error', () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    server = s;
    return new Promise((resolve, reject) => {
      s.once('error', reject);
      s.listen(port, '127.0.0.1', () => {
        port = (s.address() as net.AddressInfo).port;
        resolve();
      });
    });
  }

  function down(): Promise<void> {
    const s = server;
    server = undefined;
    for (const socket of sockets) socket.destroy();
    if (!s) return Promise.resolve();
    return new Promise((resolve) => s.close(() => resolve()));
  }

  await listen();
  return {
    url: `http://127.0.0.1:${port}`,
    up: () => (server ? Promise.resolve() : listen()),
    down,
    close: down,
  };
}
