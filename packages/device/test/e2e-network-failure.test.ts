// A hub that cannot be reached is a network failure, and the error must say so: the MQTT
// transport reports every first-connect failure as "(Not authorized)" and AMQP only says
// "rhea: connection disconnected". A user who reads "Not authorized" rotates keys that were fine.
import { createServer, type Server } from 'node:net';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Protocol } from '@switchyard/profile';
import { connect } from '../src/index.ts';

let closedPort: number;
beforeAll(async () => {
  // A port that was just free: bound, read back, closed; nothing listens on it during the test.
  const server: Server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  closedPort = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
});
afterAll(() => undefined);

const PROTOCOLS: Protocol[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws'];

describe.each(PROTOCOLS)('%s to a port where nothing listens', (protocol) => {
  it('is CONNECT_FAILED, retryable, and says it could not reach the hub, never "Not authorized"', async () => {
    const printed: unknown[][] = [];
    const warn = vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void printed.push(args));
    const error = vi.spyOn(console, 'error').mockImplementation((...args: unknown[]) => void printed.push(args));
    const err = await connect({
      connectionString: 'HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=a2V5',
      endpoint: { host: '127.0.0.1', ports: { mqtt: closedPort, amqp: closedPort, https: closedPort } },
      forceProtocol: protocol,
      profile: { features: ['telemetry'] },
      connectTimeoutMs: 10_000,
    })
      .then(() => undefined, (e: unknown) => e as Error & { code: string; retryable: boolean })
      .finally(() => {
        warn.mockRestore();
        error.mockRestore();
      });
    // Nothing of the transports' own on the application's stderr (rhea dumped CloseEvents there).
    expect(printed).toEqual([]);
    expect(err).toMatchObject({ code: 'CONNECT_FAILED', retryable: true });
    expect(err!.message).not.toMatch(/not authori[sz]ed|unauthori[sz]ed/i);
    expect(err!.message).toMatch(/could not reach the hub/);
  });
});
