// A TCP relay that counts the bytes it carries, so bytes on the wire are measured below TLS and
// independently of either client's own bookkeeping. It relays TLS untouched: the client still
// verifies the hub's certificate end to end.
import net from 'node:net';
import { once } from 'node:events';

export interface ByteCounts {
  /** Device to hub. */
  up: number;
  /** Hub to device. */
  down: number;
  connections: number;
}

export interface CountingProxy {
  readonly port: number;
  counts(): ByteCounts;
  close(): Promise<void>;
}

export async function startCountingProxy(target: { host: string; port: number }, bindAddress = '127.0.0.1'): Promise<CountingProxy> {
  const totals: ByteCounts = { up: 0, down: 0, connections: 0 };
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (client) => {
    totals.connections++;
    const upstream = net.connect({ host: target.host, port: target.port, noDelay: true });
    sockets.add(client);
    sockets.add(upstream);
    client.on('data', (chunk: Buffer) => { totals.up += chunk.length; });
    upstream.on('data', (chunk: Buffer) => { totals.down += chunk.length; });
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', teardown).on('close', teardown);
    upstream.on('error', teardown).on('close', teardown);
    client.pipe(upstream);
    upstream.pipe(client);
  });
  server.listen({ host: bindAddress, port: 0 });
  await once(server, 'listening');
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('counting proxy: no TCP address');
  return {
    port: address.port,
    counts: () => ({ ...totals }),
    close: async () => {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
