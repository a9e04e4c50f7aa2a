// After the Azure SDK gives up on an AMQP connection (KillAmqpConnection: amqp:connection:forced,
// which its retry filter does not retry), the next send reconnects on demand; C2D and methods must
// come back with it, not only telemetry (links/azure-client-link.ts, #restoreFeatures).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { connect, type DeviceClient } from '../src/internal.ts';
import { nextWithin, waitFor } from '../../../test/support/waits.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

describe.each(['amqp', 'amqp-ws'] as const)('%s after the SDK gave up on the connection', (protocol) => {
  it('a send reconnects, and C2D and methods are attached again', async () => {
    const deviceId = `give-up-${protocol}`;
    hub.createDevice(deviceId);
    const { client } = await connect({
      connectionString: hub.deviceConnectionString(deviceId, { protocol }),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: protocol,
      profile: { features: ['telemetry', 'c2d', 'methods'] },
      operationTimeoutMs: 5_000,
    });
    const device = client as DeviceClient;
    try {
      device.on('error', () => undefined);
      device.onMethod('ping', () => ({ status: 200, payload: 'pong' }));
      const inbox = device.messages();
      await device.sendEvent('before');
      await waitFor('the method link', () => hub.invokeMethod(deviceId, { methodName: 'ping', responseTimeoutInSeconds: 5 }).catch(() => undefined), 10_000, 100);

      const gaveUp = new Promise<boolean>((resolve) => device.once('disconnected', (event: { willRetry: boolean }) => resolve(event.willRetry)));
      hub.faults.inject(deviceId, { type: 'KillAmqpConnection' });
      expect(await gaveUp).toBe(false);

      await device.sendEvent('after');
      hub.sendC2D(deviceId, { body: Buffer.from('after the give-up'), messageId: `${deviceId}-c2d` });
      const c2d = await nextWithin(inbox, 'C2D on the reconnected connection', 10_000);
      expect(c2d.messageId).toBe(`${deviceId}-c2d`);
      await c2d.complete();
      const answer = await waitFor('a method answer on the reconnected connection', () => hub.invokeMethod(deviceId, { methodName: 'ping', responseTimeoutInSeconds: 5 }).catch(() => undefined), 10_000, 100);
      expect(answer).toEqual({ status: 200, payload: 'pong' });
      await inbox.return?.();
    } finally {
      await device.close();
    }
  }, 30_000);
});
