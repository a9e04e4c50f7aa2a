// Frames for a session or link that is already gone, as azure-iot-amqp-base sends them while it
// tears a connection down after a forced detach: a transfer on the link it has just detached, a
// settlement after its own end. The hub drops them, as IoT Hub's AMQP stack can, and the client's
// close then gets its answer; a socket ended without a close frame left that client waiting 45 s
// (src/amqp/stray-frames.ts).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rhea from 'rhea';
import type { Delivery, EventContext, Receiver, Sender } from 'rhea';
import { RawAmqpClient, deviceKey, sasToken, startAmqpTestHub, within, type AmqpTestHub } from './support/amqp-harness.ts';

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

  /** How the client's own close ends: with the hub's close frame, or with the socket gone first. */
  function closeAnswer(client: RawAmqpClient): Promise<'close frame' | 'socket'> {
    return within(new Promise((resolve) => {
      client.connection.once('connection_close', () => resolve('close frame'));
      client.connection.once('disconnected', () => resolve('socket'));
    }), 5000, 'the end of the connection');
  }

  const dropped = (what: string): boolean => hub.logger.entries.some((e) => e.message === what);

  it('a settlement after the client ended its session is dropped; the client\'s close is answered', async () => {
    const client = await authorized('stray-disposition');
    const delivered = new Promise<Delivery>((resolve) => client.connection.once('message', (ctx: EventContext) => resolve(ctx.delivery!)));
    const receiver = (await client.attach('receiver', '/devices/stray-disposition/messages/devicebound', { autoaccept: false })).link as Receiver;
    hub.local.sendC2D('stray-disposition', { body: Buffer.from('in flight') });
    const delivery = await within(delivered, 5000, 'c2d delivered');
    const ended = new Promise<void>((resolve) => receiver.session.once('session_close', () => resolve()));
    // The end goes out first; the settlement is written after it, as the SDK's is.
    receiver.session.close();
    await new Promise((resolve) => setImmediate(resolve));
    delivery.accept();
    await within(ended, 5000, "the hub's end");
    const answer = closeAnswer(client);
    client.connection.close();
    expect(await answer).toBe('close frame');
    expect(dropped('amqp disposition for a session that is gone dropped')).toBe(true);
    // Never completed there: the message stays queued for the device's next link.
    expect(hub.local.counters('stray-disposition').c2dCompleted).toBe(0);
  });

  it('a transfer on a link the hub detached, after the client answered the detach, is dropped; the connection serves on', async () => {
    const client = await authorized('stray-transfer');
    const sender = (await client.attach('sender', '/devices/stray-transfer/messages/events')).link as Sender;
    const detached = new Promise<void>((resolve) => sender.once('sender_close', () => resolve()));
    sender.once('sender_error', () => undefined);
    hub.local.faults.inject('stray-transfer', { type: 'KillAmqpD2CLink' });
    await within(detached, 5000, 'the forced detach');
    // rhea answers the detach on the next tick; the transfer follows it.
    await new Promise((resolve) => setImmediate(resolve));
    sender.send({ body: rhea.message.data_section(Buffer.from('too late')) } as never);
    // The next put-token on the same session is answered: neither it nor the connection ended.
    expect((await client.putToken('stray-transfer', sasToken('stray-transfer', deviceKey(hub, 'stray-transfer')))).status).toBe(200);
    expect(dropped('amqp transfer for a link that is gone dropped')).toBe(true);
    expect(hub.local.telemetry({ deviceId: 'stray-transfer' })).toEqual([]);
  });
});
