// A half-open shared connection: the hub stops answering (a network black hole, as after a NAT or
// cell change) while the socket stays up. The gateway asked for no heartbeats, so it never noticed:
// its sends timed out and went again into the same dead socket. With keepAliveSeconds it drops the
// connection after 2 × keepAliveSeconds of silence and opens a new one, while the old one is still
// black-holed.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { createGateway } from '../src/index.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

describe('a lean gateway on a connection that goes silent', () => {
  it('replaces it within 2 × keepAliveSeconds and sends on the new one while the old is still black-holed', async () => {
    const ids = ['half-open-0', 'half-open-1'];
    for (const id of ids) hub.createDevice(id);
    const gateway = await createGateway({
      protocol: 'amqp',
      env: {},
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      keepAliveSeconds: 1,
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      identities: ids.map((deviceId) => ({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp' }) })),
    });
    try {
      await gateway.open();
      const device = gateway.get(ids[0]!)!.device;
      device.on('error', () => undefined);
      await device.sendEvent('before');
      const reconnected = new Promise<number>((resolve) => {
        gateway.on('identity-connected', (event) => {
          if (event.deviceId === ids[0]) resolve(Date.now());
        });
      });
      const started = Date.now();
      const fault = hub.faults.network(ids[0]!, { kind: 'blackhole', seconds: 30 });
      expect(fault.phase).toBe('started');
      // Waits for the event; the test's own timeout bounds it: without the silence watch no
      // reconnect comes, not even after the black hole ends.
      const at: number | undefined = await reconnected;
      expect(at, 'the identity reconnected while the old connection was black-holed').toBeDefined();
      expect(at! - started).toBeLessThan(15_000);
      await device.sendEvent('after', { timeoutMs: 10_000 });
      expect(hub.telemetry({ deviceId: ids[0] }).map((r) => r.body.toString())).toEqual(['before', 'after']);
    } finally {
      hub.faults.clear(ids[0]!);
      await gateway.close();
    }
  }, 40_000);

  it('replaces it at the first operation that times out unanswered, long before 2 × keepAliveSeconds', async () => {
    const id = 'half-open-timeout';
    hub.createDevice(id);
    // The default keepAliveSeconds (30): the silence watch alone would wait 60 s.
    const gateway = await createGateway({
      protocol: 'amqp',
      env: {},
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      reconnect: { initialDelayMs: 100, maxDelayMs: 500 },
      identities: [{ deviceId: id, connectionString: hub.deviceConnectionString(id, { protocol: 'amqp' }) }],
    });
    try {
      await gateway.open();
      const device = gateway.get(id)!.device;
      device.on('error', () => undefined);
      await device.sendEvent('before');
      const reconnected = new Promise<number>((resolve) => {
        gateway.on('identity-connected', (event) => {
          if (event.deviceId === id) resolve(Date.now());
        });
      });
      const started = Date.now();
      hub.faults.network(id, { kind: 'blackhole', seconds: 60 });
      // Its answer never comes: nothing at all is read on the connection for the whole 3 s.
      await expect(device.sendEvent('into the hole', { timeoutMs: 3_000 })).rejects.toMatchObject({ code: 'TIMEOUT' });
      // Bounded by the test's timeout: before, no reconnect came for 60 s.
      const at = await reconnected;
      expect(at - started).toBeLessThan(20_000);
      await device.sendEvent('after', { timeoutMs: 10_000 });
      const bodies = hub.telemetry({ deviceId: id }).map((r) => r.body.toString());
      expect(bodies.filter((b) => b !== 'into the hole')).toEqual(['before', 'after']);
    } finally {
      hub.faults.clear(id);
      await gateway.close();
    }
  }, 40_000);
});
