// Frames for a session or link that is already gone, as azure-iot-amqp-base sends them while it
// tears a connection down after a forced detach: a transfer on the link it has just detached, a
// settlement after its own end. IoT Hub's AMQP stack answers each in a frame (an end or a close
// with an error); a socket ended without one leaves that client waiting 45 s for the answer to its
// own close (src/amqp/stray-frames.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rhea from 'rhea';
import type { Delivery, EventContext, Receiver, Sender } from 'rhea';
import { RawAmqpClient, deviceKey, sasToken, startAmqpTestHub, within, type AmqpTestHub } from './support/amqp-harness.ts';

interface Answer {
  /** What ended the client's side: an AMQP frame from the hub, or the socket. */
  by: 'session end' | 'connection close' | 'socket';
  condition: string | undefined;
}

describe('AMQP frames for a session or link that is gone', () => {
  let hub: AmqpTestHub;
  const raws: RawAmqpClient[] = [];

  beforeAll(async () => {
    hub = await startAmqpTestHub();
  });

  afterAll(async () => {
    for (const raw of raws) await raw.close();
    await hub.close();
  });

  async function authorized(deviceId: string): Promise<RawAmqpClient> {
    const client = await RawAmqpClient.connect(hub);
    raws.push(client);
    expect((await client.putToken(deviceId, sasToken(deviceId, deviceKey(hub, deviceId)))).status).toBe(200);
    return client;
  }

  function answer(client: RawAmqpClient): Promise<Answer> {
    return within(new Promise<Answer>((resolve) => {
      const conditionOf = (error: unknown): string | undefined => (error as { condition?: string } | undefined)?.condition;
      client.connection.on('session_close', (ctx: EventContext) => {
        const condition = conditionOf(ctx.session?.error);
        if (condition !== undefined) resolve({ by: 'session end', condition });
      });
      client.connection.once('connection_close', (ctx: EventContext) => resolve({ by: 'connection close', condition: conditionOf(ctx.connection.error) }));
      client.connection.once('disconnected', () => resolve({ by: 'socket', condition: undefined }));
    }), 5000, 'the hub answers the stray frame');
  }

  it('a settlement after the client ended its session: the connection is closed with amqp:not-found', async () => {
    const client = await authorized('stray-disposition');
    const delivered = new Promise<Delivery>((resolve) => client.connection.once('message', (ctx: EventContext) => resolve(ctx.delivery!)));
    const receiver = (await client.attach('receiver', '/devices/stray-disposition/messages/devicebound', { autoaccept: false })).link as Receiver;
    hub.local.sendC2D('stray-disposition', { body: Buffer.from('in flight') });
    const delivery = await within(delivered, 5000, 'c2d delivered');
    const answered = answer(client);
    // The end goes out first; the settlement is written after it, as the SDK's is.
    receiver.session.close();
    await new Promise((resolve) => setImmediate(resolve));
    delivery.accept();
    expect(await answered).toEqual({ by: 'connection close', condition: 'amqp:not-found' });
    // Never completed there: the message stays queued for the device's next link.
    expect(hub.local.counters('stray-disposition').c2dCompleted).toBe(0);
  });

  it('a transfer on a link the hub detached, after the client answered the detach: that session ends with unattached-handle', async () => {
    const client = await authorized('stray-transfer');
    const sender = (await client.attach('sender', '/devices/stray-transfer/messages/events')).link as Sender;
    const detached = new Promise<void>((resolve) => sender.once('sender_close', () => resolve()));
    sender.once('sender_error', () => undefined);
    hub.local.faults.inject('stray-transfer', { type: 'KillAmqpD2CLink' });
    await within(detached, 5000, 'the forced detach');
    const answered = answer(client);
    // rhea answers the detach on the next tick; the transfer follows it.
    await new Promise((resolve) => setImmediate(resolve));
    sender.send({ body: rhea.message.data_section(Buffer.from('too late')) } as never);
    expect(await answered).toEqual({ by: 'session end', condition: 'amqp:session:unattached-handle' });
    expect(hub.local.telemetry({ deviceId: 'stray-transfer' })).toEqual([]);
  });
});
