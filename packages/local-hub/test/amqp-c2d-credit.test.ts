// A device's C2D link keeps flowing past its first credit window: rhea spends credit as it writes
// transfers, and the hub must not count written deliveries as still queued.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EventContext } from 'rhea';
import { deviceKey, RawAmqpClient, sasToken, startAmqpTestHub, within, type AmqpTestHub } from './support/amqp-harness.ts';

describe('AMQP C2D credit', () => {
  let hub: AmqpTestHub;
  let client: RawAmqpClient | undefined;

  beforeAll(async () => {
    hub = await startAmqpTestHub();
  });

  afterAll(async () => {
    await client?.close();
    await hub.close();
  });

  it('delivers 30 messages to a receiver granting 4 credits at a time', async () => {
    client = await RawAmqpClient.connect(hub);
    expect((await client.putToken('credit-dev', sasToken('credit-dev', deviceKey(hub, 'credit-dev')))).status).toBe(200);
    for (let i = 0; i < 30; i++) hub.local.sendC2D('credit-dev', { body: Buffer.from(`m${i}`) });
    const bodies: string[] = [];
    // Listening on the connection catches deliveries that arrive while attach() is still settling.
    const all = new Promise<void>((resolve) => client?.connection.on('message', (ctx: EventContext) => {
      bodies.push(Buffer.from((ctx.message?.body as { content: Buffer }).content).toString());
      if (bodies.length === 30) resolve();
    }));
    await client.attach('receiver', '/devices/credit-dev/messages/devicebound', { credit_window: 4, autoaccept: true });
    await within(all, 10_000, 'all 30 C2D messages').catch((e: unknown) => { throw new Error(`${String(e)} after ${bodies.length}`); });
    expect(bodies).toEqual(Array.from({ length: 30 }, (_, i) => `m${i}`));
  });
});
