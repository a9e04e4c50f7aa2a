// An AMQP operation times out, so the client replaces the connection (links/azure-client-link.ts,
// operationTimedOut), while the hub refuses new connections. Three attempts (about 4 s) used to be all:
// the link was then left on the old client, which it no longer listened to. Sends still reached
// the hub through it, but the state stayed `disconnected` and C2D and methods never came back
// (the 10-minute soak's amqp-ws client: 12 C2D messages never delivered). Now the replacement
// keeps trying on a back-off until the hub takes it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { connect, type DeviceClient } from '../src/index.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

// AMQP-WS is the one the soak caught; AMQP takes the same path.
describe.each(['amqp-ws'] as const)('%s: the connection replaced while the hub refuses new ones', (protocol) => {
  it('comes back once the hub takes connections again, with C2D and methods', async () => {
    const deviceId = `replace-outage-${protocol}`;
    hub.createDevice(deviceId);
    const { client } = await connect({
      connectionString: hub.deviceConnectionString(deviceId, { protocol }),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: protocol,
      profile: { features: ['telemetry', 'c2d', 'methods'] },
    });
    const device = client as DeviceClient;
    device.on('error', () => undefined);
    try {
      const c2d = device.messages();
      device.onMethod('ping', () => ({ status: 200, payload: 'pong' }));
      await device.sendEvent('before');
      // The live connection goes silent; new ones are refused for longer than the old three tries
      // took (each an SDK open with its own retries: about 4 s in all).
      hub.faults.network(deviceId, { kind: 'blackhole', seconds: 60 });
      hub.faults.network(deviceId, { kind: 'refuse', seconds: 15 });
      const reconnected = new Promise<void>((resolve) => {
        device.on('state', (change) => {
          if (change.to === 'connected') resolve();
        });
      });
      await expect(device.sendEvent('into the hole', { timeoutMs: 2_000 })).rejects.toMatchObject({ code: 'TIMEOUT' });
      // Bounded by the test's timeout: before, no `connected` ever came.
      await reconnected;
      await device.sendEvent('after', { timeoutMs: 10_000 });
      hub.sendC2D(deviceId, { body: Buffer.from('c2d after') });
      const message = await c2d.next();
      expect(message.value?.body.toString()).toBe('c2d after');
      await message.value?.complete();
      const answer = await hub.invokeMethod(deviceId, { methodName: 'ping', payload: 1, responseTimeoutInSeconds: 10 });
      expect(answer.status).toBe(200);
    } finally {
      hub.faults.clear(deviceId);
      await device.close();
    }
  }, 60_000);
});
