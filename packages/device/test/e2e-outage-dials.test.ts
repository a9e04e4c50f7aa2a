// An outage that refuses every new connection (the hub down, or refusing this device) must be
// retried on a back-off, not stormed. The Azure clients start a retry chain per feature on every
// 'disconnect', and each failed dial emitted another; the outbox sent its whole window into the
// down link, each send a dial of its own. Through 20 s of refusals one client with C2D and methods
// dialled 458 times over AMQP and 86-224 times over MQTT, and the AMQP one grew by 80 MB of RSS
// (links/reconnect-gate.ts, outbox.ts "probing"). Here: 8 s of refusals after a reset.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type FaultEvent, type LocalHub } from '@switchyard/local-hub';
import { connect, type DeviceClient } from '../src/index.ts';
import { nextWithin } from '../../../test/support/waits.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

const OUTAGE_SECONDS = 8;

/** Resolves at the client's next `event`; rejects naming `what` if it does not come within `ms`. */
function eventWithin(device: DeviceClient, event: 'connected' | 'disconnected', what: string, ms: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    device.once(event, () => {
      clearTimeout(timer);
      resolve();
    });
  });
}
// Two feature chains and one outbox attempt at a time, each on a back-off from 100 ms doubling to
// 5 s: about 20 dials in 8 s. The storm made 100-300.
const MAX_DIALS = 40;

describe.each(['amqp', 'mqtt'] as const)('a %s client with C2D, methods and an outbox, through an outage', (protocol) => {
  it(`dials at most ${MAX_DIALS} times in ${OUTAGE_SECONDS} s of refused connections, then delivers everything queued`, async () => {
    const deviceId = `outage-dials-${protocol}`;
    hub.createDevice(deviceId);
    const { client } = await connect({
      connectionString: hub.deviceConnectionString(deviceId, { protocol }),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: protocol,
      profile: { features: ['telemetry', 'c2d', 'methods'] },
      outbox: {},
      // An attempt whose answer the transport loses is sent again after this: the net under the
      // test's own timeout on a loaded machine.
      operationTimeoutMs: 10_000,
    });
    const device = client as DeviceClient;
    device.on('error', () => undefined);
    try {
      const c2d = device.messages();
      device.onMethod('ping', () => ({ status: 200, payload: 'pong' }));
      await device.sendEvent('before');
      let dials = 0;
      const onFault = (event: FaultEvent): void => {
        if (event.deviceId === deviceId && event.fault === 'refuse' && event.detail.startsWith('refused new')) dials++;
      };
      hub.faults.on('fault', onFault);
      const down = eventWithin(device, 'disconnected', 'the drop after the reset', 15_000);
      hub.faults.network(deviceId, { kind: 'refuse', seconds: OUTAGE_SECONDS });
      hub.faults.network(deviceId, { kind: 'reset' });
      await down;
      const bodies = Array.from({ length: 20 }, (_, i) => `outage-${i}`);
      // Each bound below ends before the test's own, so a failure names the step that hung.
      const sent = bodies.map((body) => device.sendEvent(body, { timeoutMs: 60_000 }));
      await eventWithin(device, 'connected', 'the reconnect after the refusals', 45_000);
      hub.faults.off('fault', onFault);
      expect(dials, 'dials into the refusing hub').toBeLessThanOrEqual(MAX_DIALS);
      expect(dials, 'the fault refused the reconnects').toBeGreaterThan(0);
      expect((await Promise.allSettled(sent)).filter((o) => o.status === 'rejected')).toEqual([]);
      // At least once: an attempt whose answer the transport lost goes again after its deadline,
      // so the hub may hold it twice. In the order of first arrival, by message id, nothing is
      // missing or out of place.
      const firsts = new Map<string, string>();
      for (const r of hub.telemetry({ deviceId }).sort((a, b) => a.sequenceNumber - b.sequenceNumber)) {
        const id = String(r.systemProperties.messageId);
        if (!firsts.has(id)) firsts.set(id, r.body.toString());
      }
      expect([...firsts.values()].filter((b) => b.startsWith('outage-'))).toEqual(bodies);
      // The features are back too.
      hub.sendC2D(deviceId, { body: Buffer.from('after') });
      const message = await nextWithin(c2d, 'the C2D message sent after the reconnect', 15_000);
      expect(message.body.toString()).toBe('after');
      await message.complete();
    } finally {
      hub.faults.clear(deviceId);
      await device.close();
    }
  }, 120_000);
});
