// IoT Hub keeps one AMQP connection per device: when the device connects again elsewhere, the
// older connection loses the identity and C2D goes to the newer one. Before, the hub kept both and
// the older connection went on receiving every C2D message.
import { once } from 'node:events';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Message } from 'azure-iot-device';
import type { Client } from 'azure-iot-device';
import { silentLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { azureClient } from './support/azure-clients.ts';
import { keyOf } from './support/faults.ts';

let hub: LocalHub;
const clients: Client[] = [];
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.close();
});

describe('a second AMQP connection for one device', () => {
  it('takes the identity from the first: the first is disconnected, and C2D reaches the second', async () => {
    hub.createDevice('twice');
    const first = await azureClient(hub, 'amqp', 'twice', keyOf(hub, 'twice'));
    clients.push(first);
    // NoRetry, so the first stays down once the hub takes the identity away and the two do not
    // take it back from each other (two live clients of one identity would, on IoT Hub too).
    const { NoRetry } = await import('azure-iot-common');
    first.setRetryPolicy(new NoRetry());
    await first.open();
    const firstMessages: string[] = [];
    first.on('message', (m: Message) => { firstMessages.push(m.getData().toString()); void first.complete(m); });
    await first.sendEvent(new Message('from the first'));

    const disconnected = once(first, 'disconnect');
    const second = await azureClient(hub, 'amqp-ws', 'twice', keyOf(hub, 'twice'));
    clients.push(second);
    await second.open();
    const received = new Promise<string>((resolve) => second.on('message', (m: Message) => { resolve(m.getData().toString()); void second.complete(m); }));
    await disconnected;

    hub.sendC2D('twice', { body: Buffer.from('for the newest') });
    expect(await received).toBe('for the newest');
    expect(firstMessages).toEqual([]);
    expect(hub.stats().connectedIdentities.filter((i) => i.deviceId === 'twice').map((i) => i.protocol)).toEqual(['amqp-ws']);
  });
});
