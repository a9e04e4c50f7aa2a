// Test helpers: bounded waiting, and a TCP relay whose sockets a test can cut to simulate a
// network drop between the gateway and the hub (TLS passes through it untouched).
import { createServer, connect, type Server, type Socket } from 'node:net';
import { once } from 'node:events';

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Runs `task` over `items`, `concurrency` at a time. */
export async function inBatches<T>(items: readonly T[], concurrency: number, task: (item: T) => Promise<void>): Promise<void> {
  const queue = [...items];
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next !== undefined; next = queue.shift()) await task(next);
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, queue.length) }, worker));
}

export interface Relay {
  port: number;
  /** Destroys every relayed connection (both sides); the relay keeps listening. */
  cut(): void;
  /** While paused, new connections are accepted and dropped at once, like a hub that is down. */
  pause(): void;
  resume(): void;
  connectionCount(): number;
  /** Connections dropped at once because the relay was paused. */
  refusedCount(): number;
  close(): Promise<void>;
}

export async function startRelay(targetHost: string, targetPort: number): Promise<Relay> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let refused = 0;
  let paused = false;
  const server: Server = createServer((downstream) => {
    if (paused) {
      refused++;
      downstream.destroy();
      return;
    }
    accepted++;
    const upstream = connect(targetPort, targetHost);
    for (const socket of [downstream, upstream]) {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
      socket.on('error', () => undefined);
    }
    downstream.pipe(upstream);
    upstream.pipe(downstream);
    downstream.on('close', () => upstream.destroy());
    upstream.on('close', () => downstream.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('relay has no address');
  return {
    port: address.port,
    cut: () => {
      for (const socket of sockets) socket.destroy();
    },
    pause: () => {
      paused = true;
    },
    resume: () => {
      paused = false;
    },
    connectionCount: () => accepted,
    refusedCount: () => refused,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
