// What a client does when the network under an established connection goes silent (the hub's
// `blackhole` fault: the device's sockets stay open, nothing passes, new connections work):
// close() settles in a bounded time without waiting for the SDK's own timeouts, and a half-open
// connection is noticed within 2 x keepAliveSeconds (+1 s) and replaced. The waits are for the
// client's events; a case that misses its bound fails by the test timeout.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import type { Protocol } from '@switchyard/profile';
import { connect, type DeviceClient } from '../src/index.ts';

let hub: LocalHub;
const logger = createMemoryLogger();
const clients: DeviceClient[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger });
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await hub?.close();
});

async function connected(protocol: Protocol, extra: { keepAliveSeconds?: number; operationTimeoutMs?: number } = {}): Promise<{ client: DeviceClient; deviceId: string }> {
  const deviceId = `${protocol}-${randomUUID().slice(0, 8)}`;
  hub.createDevice(deviceId);
  const { client } = await connect({
    connectionString: hub.deviceConnectionString(deviceId, { protocol }),
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    forceProtocol: protocol,
    profile: protocol === 'https' ? { features: ['telemetry'] } : { features: ['telemetry', 'c2d'] },
    connectTimeoutMs: 10_000,
    ...extra,
  });
  clients.push(client as DeviceClient);
  // A C2D listener is what keeps a real device's connection up (the SDK re-opens only then).
  if (protocol !== 'https') client.on('message', (m) => void m.complete().catch(() => undefined));
  client.on('error', () => undefined);
  await client.sendEvent('before');
  return { client: client as DeviceClient, deviceId };
}

const PROTOCOLS: Protocol[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];

describe.each(PROTOCOLS)('%s over a dead network', (protocol) => {
  it('close() ends the connection itself instead of running into the close deadline', async () => {
    // The core abandons a link close that outlives the operation deadline, with a warning; the
    // link must be done well before that.
    const { client, deviceId } = await connected(protocol, { operationTimeoutMs: 12_000 });
    const warnings: string[] = [];
    client.on('warning', (w) => warnings.push(w));
    hub.faults.network(deviceId, { kind: 'blackhole', seconds: 60 });
    try {
      await client.close();
    } finally {
      hub.faults.clear(deviceId);
    }
    expect(client.state).toBe('closed');
    expect(warnings.filter((w) => w.includes('close did not complete'))).toEqual([]);
  }, 10_000);

  if (protocol === 'https') {
    it('a request caught on a dead keep-alive socket fails by its deadline; the next one gets through', async () => {
      const { client, deviceId } = await connected(protocol, { operationTimeoutMs: 1_500 });
      hub.faults.network(deviceId, { kind: 'blackhole', seconds: 60 });
      try {
        await expect(client.sendEvent('caught')).rejects.toMatchObject({ code: 'TIMEOUT' });
        await client.sendEvent({ body: 'after', messageId: 'after-1' });
      } finally {
        hub.faults.clear(deviceId);
      }
      expect(hub.telemetry({ deviceId }).some((r) => r.systemProperties.messageId === 'after-1')).toBe(true);
    }, 15_000);
  } else {
    it('a half-open connection is noticed within 2 x keepAliveSeconds and replaced', async () => {
      const { client, deviceId } = await connected(protocol, { keepAliveSeconds: 1 });
      const down = new Promise<{ willRetry: boolean }>((resolve) => client.once('disconnected', resolve));
      const back = new Promise<void>((resolve) => {
        client.on('state', (change) => {
          if (change.to === 'connected') resolve();
        });
      });
      hub.faults.network(deviceId, { kind: 'blackhole', seconds: 60 });
      try {
        expect(await down).toMatchObject({ willRetry: true });
        await back;
        // The replacement carries traffic while the old socket is still black-holed.
        await client.sendEvent({ body: 'after', messageId: 'after-1' });
      } finally {
        hub.faults.clear(deviceId);
      }
      expect(hub.telemetry({ deviceId }).some((r) => r.systemProperties.messageId === 'after-1')).toBe(true);
    }, 12_000);
  }
});

describe('keepAliveSeconds', () => {
  it('defaults to 30 s on MQTT (the SDK would ask for 180 s, noticing a dead connection after 6 minutes)', async () => {
    const { deviceId } = await connected('mqtt');
    const entry = logger.entries.find((e) => e.message === 'mqtt device connected' && e.fields.deviceId === deviceId);
    expect(entry?.fields.keepalive).toBe(30);
  });
});
