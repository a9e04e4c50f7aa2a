// The lean engine puts every identity's links on the connection's one control session, whose
// outgoing deliveries rhea keeps in one ring of 2048 freed only from its oldest end
// (src/amqp/session-deliveries.ts). A telemetry message sent while an identity's links were being
// closed for a fault went out on the detached link; the hub never settled it, so it held the ring
// for good, and 2048 deliveries later every identity on the connection was stuck `reconnecting`
// (its put-token could not be sent): a burst of KillAmqpC2DLink did that in seconds, the soak's
// gateway slowly. Here the sends are made at the moment the gateway reports the fault, before the
// identity is re-opened; afterwards nothing may be left in the ring.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { createGateway, type Gateway } from '../src/index.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

/** The control session's outgoing ring, which nothing public shows. */
function outgoingRing(gateway: Gateway, deviceId: string): { size: number } {
  const identity = (gateway as unknown as { identities: Map<string, { core: { link: { channel: unknown } } }> }).identities.get(deviceId)!;
  const channel = identity.core.link.channel as { connection: { control: { outgoing: { deliveries: { size: number } } } } };
  return channel.connection.control.outgoing.deliveries;
}

describe('a lean gateway whose identity sends while a fault closes its links', () => {
  it('leaves no delivery behind on the shared session, and the identity keeps sending', async () => {
    const deviceId = 'ring-0';
    hub.createDevice(deviceId);
    const gateway = await createGateway({
      protocol: 'amqp',
      env: {},
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      outbox: {},
      identities: [{ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp' }) }],
    });
    try {
      await gateway.open();
      const device = gateway.get(deviceId)!.device;
      // A 'message' listener attaches the C2D link, which the fault detaches; a C2D message
      // received says it is attached.
      const received = new Promise<void>((resolve) =>
        device.on('message', (m) => {
          void m.complete().catch(() => undefined);
          resolve();
        }),
      );
      hub.sendC2D(deviceId, { body: Buffer.from('hello') });
      await received;
      await device.sendEvent('first', { timeoutMs: 10_000 });

      const sentInFault: Array<Promise<void>> = [];
      const faulted = new Promise<void>((resolve) =>
        gateway.on('identity-error', () => {
          if (sentInFault.length > 0) return;
          for (let i = 0; i < 5; i++) sentInFault.push(device.sendEvent(`during-${i}`, { timeoutMs: 20_000 }));
          resolve();
        }),
      );
      const back = new Promise<void>((resolve) => gateway.on('identity-connected', () => resolve()));
      hub.faults.inject(deviceId, { type: 'KillAmqpC2DLink' });
      await faulted;
      await back;
      await Promise.all(sentInFault);
      await device.sendEvent('after', { timeoutMs: 10_000 });
      await device.outbox!.drain();
      // rhea frees settled slots at the end of the pass that settled them.
      await new Promise<void>((resolve) => setImmediate(resolve));
      expect(outgoingRing(gateway, deviceId).size).toBe(0);
      const seen = new Set(hub.telemetry({ deviceId }).map((t) => t.body.toString()));
      for (let i = 0; i < 5; i++) expect(seen.has(`during-${i}`)).toBe(true);
    } finally {
      await gateway.close();
    }
  }, 40_000);
});
