// connect() into a network that swallows every packet settles by connectTimeoutMs on every
// protocol, and leaves nothing running: the attempt's socket is closed and the SDK does not dial
// again. The "network" is a loopback listener that accepts and reads but never answers, which is
// what a device behind a black-holing firewall sees (the TCP handshake is the kernel's, the TLS
// handshake never finishes). Before the fix, AMQP and AMQP-WS never settled (the SDK defers its
// close until a connect that never ends), and MQTT rejected but kept its socket open.
import { createServer, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Protocol } from '@switchyard/profile';
import { connect } from '../src/index.ts';

interface SilentListener {
  port: number;
  accepted(): number;
  /** Resolves once every connection accepted so far has been closed by the client. */
  allClosed(): Promise<void>;
  close(): Promise<void>;
}

async function silentListener(): Promise<SilentListener> {
  const open = new Set<Socket>();
  let accepted = 0;
  const waiters: Array<() => void> = [];
  const settle = (): void => {
    if (open.size === 0) for (const w of waiters.splice(0)) w();
  };
  const server = createServer((socket) => {
    accepted++;
    open.add(socket);
    // Read and drop: the client's bytes leave, nothing ever comes back; its FIN is seen.
    socket.on('data', () => undefined);
    socket.on('end', () => socket.destroy());
    socket.on('error', () => undefined);
    socket.on('close', () => {
      open.delete(socket);
      settle();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    accepted: () => accepted,
    allClosed: () =>
      new Promise<void>((resolve) => {
        waiters.push(resolve);
        settle();
      }),
    close: async () => {
      for (const socket of open) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

let listener: SilentListener | undefined;
afterEach(async () => {
  await listener?.close();
  listener = undefined;
});

const options = (protocol: Protocol, port: number) => ({
  connectionString: 'HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=a2V5',
  endpoint: { host: '127.0.0.1', ports: { mqtt: port, amqp: port, https: port } },
  forceProtocol: protocol,
  profile: { features: ['telemetry'] } as const,
  connectTimeoutMs: 1_000,
  operationTimeoutMs: 1_000,
});

describe.each(['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws'] as const)('connect() over %s into a silent network', (protocol) => {
  it('rejects with TIMEOUT by connectTimeoutMs and closes the socket it opened', async () => {
    listener = await silentListener();
    const err = await connect(options(protocol, listener.port)).then(
      () => undefined,
      (e: unknown) => e as { code?: string },
    );
    expect(err).toMatchObject({ code: 'TIMEOUT', details: { protocol, operation: 'connect', timeoutMs: 1_000 } });
    expect((err as unknown as Error).message).toMatch(/connect did not complete within 1000 ms; the attempt was abandoned/);
    // The attempt reached the listener, so there was a socket to leave behind.
    expect(listener.accepted()).toBeGreaterThan(0);
    await listener.allClosed();
  }, 15_000);
});

describe('https into a silent network', () => {
  it('connects without the network, then a send fails by its deadline and close() leaves no socket', async () => {
    listener = await silentListener();
    const { client } = await connect(options('https', listener.port));
    await expect(client.sendEvent('x')).rejects.toMatchObject({ code: 'TIMEOUT', details: { delivered: 'unknown' } });
    expect(listener.accepted()).toBeGreaterThan(0);
    await client.close();
    await listener.allClosed();
  }, 15_000);
});
