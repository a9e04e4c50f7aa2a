// What the SDK never sends: a raw rhea client and raw TLS sockets probe the AMQP front-end's
// refusals. Each refusal must hit only the offender; the connection's other identities and the
// hub's other connections keep working.
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import rhea from 'rhea';
import type { EventContext, Receiver, Sender } from 'rhea';
import { Message } from 'azure-iot-device';
import { BATCH_MESSAGE_FORMAT } from '../src/amqp/index.ts';
import { RawAmqpClient, deviceKey, sasToken, sdkClient, startAmqpTestHub, waitFor, within, type AmqpTestHub } from './support/amqp-harness.ts';

describe('AMQP front-end refusals', () => {
  let hub: AmqpTestHub;
  const raws: RawAmqpClient[] = [];

  beforeAll(async () => {
    hub = await startAmqpTestHub();
  });

  afterAll(async () => {
    for (const raw of raws) await raw.close();
    await hub.close();
  });

  async function raw(): Promise<RawAmqpClient> {
    const client = await RawAmqpClient.connect(hub);
    raws.push(client);
    return client;
  }

  const refusals = (deviceId: string): number => hub.logger.entries.filter((e) => e.message === 'refused' && e.fields.deviceId === deviceId).length;

  it('answers a wrong key with 401 for that identity only', async () => {
    const client = await raw();
    const goodKey = deviceKey(hub, 'neg-good');
    deviceKey(hub, 'neg-bad');
    const wrongKey = Buffer.alloc(32, 7).toString('base64');
    expect((await client.putToken('neg-good', sasToken('neg-good', goodKey))).status).toBe(200);
    const bad = await client.putToken('neg-bad', sasToken('neg-bad', wrongKey));
    expect(bad.status).toBe(401);
    expect(String(bad.description)).not.toContain('sig=');

    const refused = await client.attach('sender', '/devices/neg-bad/messages/events');
    expect(refused.result).toMatchObject({ opened: false, error: { condition: 'amqp:unauthorized-access' } });
    expect(refusals('neg-bad')).toBeGreaterThan(0);

    const { link } = await client.attach('sender', '/devices/neg-good/messages/events');
    expect(await client.send(link as Sender, { body: rhea.message.data_section(Buffer.from('ok')) })).toEqual({ outcome: 'accepted' });
    expect(hub.local.telemetry({ deviceId: 'neg-good' })).toHaveLength(1);
    expect(hub.local.telemetry({ deviceId: 'neg-bad' })).toHaveLength(0);
  });

  it('answers an expired token and an unknown device with 401', async () => {
    const client = await raw();
    const key = deviceKey(hub, 'neg-expired');
    expect((await client.putToken('neg-expired', sasToken('neg-expired', key, -60))).status).toBe(401);
    expect((await client.putToken('neg-nobody', sasToken('neg-nobody', key))).status).toBe(401);
    expect(client.isDisconnected).toBe(false);
  });

  it('detaches an identity whose token expires, and only that identity', async () => {
    const client = await raw();
    const shortKey = deviceKey(hub, 'neg-short');
    const longKey = deviceKey(hub, 'neg-long');
    expect((await client.putToken('neg-short', sasToken('neg-short', shortKey, 2))).status).toBe(200);
    expect((await client.putToken('neg-long', sasToken('neg-long', longKey))).status).toBe(200);
    const short = (await client.attach('sender', '/devices/neg-short/messages/events')).link as Sender;
    const long = (await client.attach('sender', '/devices/neg-long/messages/events')).link as Sender;
    const detached = await within(new Promise<unknown>((resolve) => short.once('sender_close', () => resolve(short.error))), 10_000, 'expiry detach');
    expect(detached).toMatchObject({ condition: 'amqp:unauthorized-access' });
    expect(await client.send(long, { body: rhea.message.data_section(Buffer.from('alive')) })).toEqual({ outcome: 'accepted' });
    expect(hub.local.stats().connectedIdentities.some((i) => i.deviceId === 'neg-short')).toBe(false);
    expect(hub.local.stats().connectedIdentities.some((i) => i.deviceId === 'neg-long')).toBe(true);
  });

  it("refuses attaches to another device's addresses and foreign `to` addresses", async () => {
    const client = await raw();
    const key = deviceKey(hub, 'neg-owner');
    deviceKey(hub, 'neg-victim');
    expect((await client.putToken('neg-owner', sasToken('neg-owner', key))).status).toBe(200);
    for (const [kind, address] of [
      ['sender', '/devices/neg-victim/messages/events'],
      ['receiver', '/devices/neg-victim/messages/devicebound'],
      ['receiver', '/devices/neg-victim/methods/devicebound'],
      ['sender', '/devices/neg-victim/twin'],
      ['receiver', '/messages/devicebound'],
      // A device receives C2D; it cannot attach a sender there.
      ['sender', '/devices/neg-owner/messages/devicebound'],
    ] as const) {
      const { result } = await client.attach(kind, address);
      expect(result, `${kind} ${address}`).toMatchObject({ opened: false, error: { condition: 'amqp:unauthorized-access' } });
    }
    expect(refusals('neg-victim')).toBeGreaterThanOrEqual(4);

    hub.local.sendC2D('neg-victim', { body: Buffer.from('secret') });
    const own = (await client.attach('sender', '/devices/neg-owner/messages/events')).link as Sender;
    const spoofed = await client.send(own, { to: '/devices/neg-victim/messages/events', body: rhea.message.data_section(Buffer.from('spoof')) });
    expect(spoofed).toMatchObject({ outcome: 'rejected', error: { condition: 'amqp:unauthorized-access' } });
    expect(hub.local.telemetry({ deviceId: 'neg-victim' })).toHaveLength(0);
    // Never handed to the intruder: a delivered message would stay locked for 60 s, so the owner
    // receiving it at once proves it was still unlocked.
    const owner = await raw();
    expect((await owner.putToken('neg-victim', sasToken('neg-victim', deviceKey(hub, 'neg-victim')))).status).toBe(200);
    // Listening on the connection catches a delivery that arrives while attach() is still settling.
    const delivered = new Promise<string>((resolve) => owner.connection.once('message', (ctx: EventContext) => resolve(Buffer.from((ctx.message?.body as { content: Buffer }).content).toString())));
    await owner.attach('receiver', '/devices/neg-victim/messages/devicebound');
    expect(await within(delivered, 5000, 'owner receives')).toBe('secret');
    expect(await client.send(own, { body: rhea.message.data_section(Buffer.from('mine')) })).toEqual({ outcome: 'accepted' });
    expect(client.isDisconnected).toBe(false);
  });

  it('refuses device links before any put-token (no client certificate)', async () => {
    const client = await raw();
    deviceKey(hub, 'neg-anon');
    const { result } = await client.attach('sender', '/devices/neg-anon/messages/events');
    expect(result).toMatchObject({ opened: false, error: { condition: 'amqp:unauthorized-access' } });
  });

  it('rejects an oversize message with message-size-exceeded and keeps the link', async () => {
    const client = await raw();
    const key = deviceKey(hub, 'neg-big');
    expect((await client.putToken('neg-big', sasToken('neg-big', key))).status).toBe(200);
    const link = (await client.attach('sender', '/devices/neg-big/messages/events')).link as Sender;
    const big = await client.send(link, { body: rhea.message.data_section(Buffer.alloc(300 * 1024, 1)) });
    expect(big).toMatchObject({ outcome: 'rejected', error: { condition: 'amqp:link:message-size-exceeded' } });
    expect(await client.send(link, { body: rhea.message.data_section(Buffer.from('small')) })).toEqual({ outcome: 'accepted' });
    expect(hub.local.telemetry({ deviceId: 'neg-big' }).map((r) => r.body.toString())).toEqual(['small']);
  });

  it('accepts IoT Hub batched telemetry (message format 0x80013700)', async () => {
    const client = await raw();
    const key = deviceKey(hub, 'neg-batch');
    expect((await client.putToken('neg-batch', sasToken('neg-batch', key))).status).toBe(200);
    const link = (await client.attach('sender', '/devices/neg-batch/messages/events')).link as Sender;
    const inner = [
      rhea.message.encode({ message_id: 'b-1', application_properties: { n: 1 }, body: rhea.message.data_section(Buffer.from('one')) }),
      rhea.message.encode({ message_id: 'b-2', application_properties: { n: 2 }, body: rhea.message.data_section(Buffer.from('two')) }),
    ];
    const batch = rhea.message.encode({ body: rhea.message.data_sections(inner) });
    expect(await client.send(link, batch, BATCH_MESSAGE_FORMAT)).toEqual({ outcome: 'accepted' });
    const records = hub.local.telemetry({ deviceId: 'neg-batch' });
    expect(records.map((r) => [r.body.toString(), r.systemProperties.messageId, r.properties.n])).toEqual([['one', 'b-1', '1'], ['two', 'b-2', '2']]);

    const malformed = await client.send(link, Buffer.from([0x00, 0x53, 0x77, 0x45]), BATCH_MESSAGE_FORMAT);
    expect(malformed).toMatchObject({ outcome: 'rejected', error: { condition: 'com.microsoft:argument-error' } });
  });

  it('closes a connection that sends garbage and keeps serving others', async () => {
    const bystander = await raw();
    const key = deviceKey(hub, 'neg-bystander');
    expect((await bystander.putToken('neg-bystander', sasToken('neg-bystander', key))).status).toBe(200);

    for (const garbage of [
      Buffer.from('GET / HTTP/1.1\r\nHost: x\r\n\r\n'),
      // A valid AMQP header, then a frame whose body is not a performative.
      Buffer.concat([Buffer.from('AMQP\x00\x01\x00\x00', 'latin1'), Buffer.from([0, 0, 0, 16, 2, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4])]),
    ]) {
      const socket = tls.connect({ host: 'localhost', port: hub.amqpPort, ca: hub.ca, servername: 'localhost' });
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      await within(new Promise<void>((resolve) => socket.once('secureConnect', () => resolve())), 5000, 'tls connect');
      socket.write(garbage);
      await within(closed, 5000, 'hub closes the garbage connection');
    }

    const link = (await bystander.attach('sender', '/devices/neg-bystander/messages/events')).link as Sender;
    expect(await bystander.send(link, { body: rhea.message.data_section(Buffer.from('fine')) })).toEqual({ outcome: 'accepted' });
    const fresh = await raw();
    expect((await fresh.putToken('neg-bystander', sasToken('neg-bystander', key))).status).toBe(200);
  });

  it('detaches an identity whose device is removed while the connection lives on', async () => {
    const client = await raw();
    const goneKey = deviceKey(hub, 'neg-gone');
    const stayKey = deviceKey(hub, 'neg-stay');
    expect((await client.putToken('neg-gone', sasToken('neg-gone', goneKey))).status).toBe(200);
    expect((await client.putToken('neg-stay', sasToken('neg-stay', stayKey))).status).toBe(200);
    const gone = (await client.attach('receiver', '/devices/neg-gone/messages/devicebound')).link as Receiver;
    const stay = (await client.attach('sender', '/devices/neg-stay/messages/events')).link as Sender;
    const detached = new Promise<void>((resolve) => gone.once('receiver_close', () => resolve()));
    hub.local.removeDevice('neg-gone');
    await within(detached, 5000, 'kick detach');
    expect(await client.send(stay, { body: rhea.message.data_section(Buffer.from('stay')) })).toEqual({ outcome: 'accepted' });
  });

  it('leaves an unsettled C2D message locked when its link detaches (no abandon)', async () => {
    const client = await raw();
    const key = deviceKey(hub, 'neg-detach');
    expect((await client.putToken('neg-detach', sasToken('neg-detach', key))).status).toBe(200);
    const got = new Promise<void>((resolve) => client.connection.once('message', () => resolve()));
    const receiver = (await client.attach('receiver', '/devices/neg-detach/messages/devicebound', { autoaccept: false })).link as Receiver;
    hub.local.sendC2D('neg-detach', { body: Buffer.from('held') });
    await within(got, 5000, 'c2d delivered');
    const closed = new Promise<void>((resolve) => receiver.once('receiver_close', () => resolve()));
    receiver.close();
    await within(closed, 5000, 'detach answered');
    // A put-token round trip after the detach proves the hub has processed it.
    expect((await client.putToken('neg-detach', sasToken('neg-detach', key))).status).toBe(200);
    const counters = hub.local.counters('neg-detach');
    expect([counters.c2dAbandoned, counters.c2dCompleted, counters.c2dRejected]).toEqual([0, 0, 0]);
    expect(hub.local.stats().devices['neg-detach']?.queuedC2D).toBe(1);
  });

  it('fails an Azure SDK client with a wrong key fast (NoRetry), maps oversize sends to MessageTooLargeError', async () => {
    deviceKey(hub, 'neg-sdk');
    const wrong = await sdkClient(hub, 'amqp', 'neg-sdk', { noRetry: true, key: Buffer.alloc(32, 9).toString('base64') });
    const error = await within(wrong.open().then(() => undefined, (e: Error) => e), 10_000, 'open refused');
    expect(error?.name).toBe('UnauthorizedError');
    await wrong.close().catch(() => undefined);

    const right = await sdkClient(hub, 'amqp', 'neg-sdk', { noRetry: true });
    await within(right.open(), 10_000, 'open');
    await within(right.sendEvent(new Message('ok')), 10_000, 'send');
    // Over the 256 KB limit: the rejection's condition reaches the SDK as its own error type.
    const tooBig = await within(right.sendEvent(new Message(Buffer.alloc(300 * 1024, 2))).then(() => undefined, (e: Error) => e), 10_000, 'oversize send');
    expect(tooBig?.name).toBe('MessageTooLargeError');
    await within(right.close(), 5000, 'close');
    await waitFor(() => (hub.local.telemetry({ deviceId: 'neg-sdk' }).length === 1 ? true : undefined), 5000, 'telemetry');
  });
});
