// The official Azure device Client (azure-iot-device-amqp Amqp and AmqpWs) against the AMQP
// front-end over real TLS and WebSockets on loopback, certificate verification on.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Message } from 'azure-iot-device';
import type { Client } from 'azure-iot-device';
import { sdkClient, startAmqpTestHub, waitFor, within, type AmqpTestHub } from './support/amqp-harness.ts';

type C2DMessage = Message & { transportObj?: { delivery_count?: number } };

describe.each(['amqp', 'amqp-ws'] as const)('Azure SDK over %s', (transport) => {
  let hub: AmqpTestHub;
  const clients: Client[] = [];
  const device = (name: string): string => `${transport}-${name}`;

  beforeAll(async () => {
    hub = await startAmqpTestHub();
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => within(c.close(), 5000, 'client close').catch(() => undefined)));
    await hub.close();
  });

  async function connected(name: string, opts: Parameters<typeof sdkClient>[3] = {}): Promise<Client> {
    const client = await sdkClient(hub, transport, device(name), opts);
    clients.push(client);
    await within(client.open(), 10_000, 'open');
    return client;
  }

  it('delivers telemetry with application and system properties', async () => {
    const client = await connected('telemetry');
    const message = new Message(Buffer.from('{"t":21.5}'));
    message.messageId = 'msg-1';
    message.correlationId = '3f1b2c4d-1111-4222-8333-944455556666';
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('color', 'red');
    message.properties.add('dt-subject', 'thermo');
    await within(client.sendEvent(message), 10_000, 'sendEvent');

    const [record] = hub.local.telemetry({ deviceId: device('telemetry') });
    expect(record?.protocol).toBe(transport);
    expect(record?.body.toString()).toBe('{"t":21.5}');
    expect(record?.properties.color).toBe('red');
    expect(record?.systemProperties).toMatchObject({
      messageId: 'msg-1',
      // Sent as an AMQP uuid by the SDK; must come back as the same string.
      correlationId: '3f1b2c4d-1111-4222-8333-944455556666',
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      subject: 'thermo',
    });
    expect(hub.local.stats().connections[transport]).toBeGreaterThanOrEqual(1);
  });

  it('delivers C2D and completes it', async () => {
    const client = await connected('c2d-complete');
    const got = new Promise<C2DMessage>((resolve) => client.on('message', (m: C2DMessage) => resolve(m)));
    hub.local.sendC2D(device('c2d-complete'), { body: Buffer.from('hello'), messageId: 'c2d-1', properties: { k: 'v' }, ack: 'full' });
    const m = await within(got, 10_000, 'c2d');
    expect(Buffer.from(m.data as Buffer).toString()).toBe('hello');
    expect(m.messageId).toBe('c2d-1');
    expect(m.properties.getValue('k')).toBe('v');
    expect(m.ack).toBe('full');
    expect(typeof m.expiryTimeUtc).toBe('number');
    await within(client.complete(m), 5000, 'complete');
    await waitFor(() => (hub.local.stats().devices[device('c2d-complete')]?.c2dCompleted === 1 ? true : undefined), 5000, 'completed');
    expect(hub.local.stats().devices[device('c2d-complete')]?.queuedC2D).toBe(0);
  });

  it('redelivers an abandoned C2D message with a higher delivery count', async () => {
    const client = await connected('c2d-abandon');
    const seen: C2DMessage[] = [];
    client.on('message', (m: C2DMessage) => {
      seen.push(m);
      if (seen.length === 1) void client.abandon(m);
      else void client.complete(m);
    });
    hub.local.sendC2D(device('c2d-abandon'), { body: Buffer.from('again') });
    await waitFor(() => (hub.local.stats().devices[device('c2d-abandon')]?.c2dCompleted === 1 ? true : undefined), 10_000, 'redelivered and completed');
    expect(seen).toHaveLength(2);
    expect(seen[0]?.transportObj?.delivery_count ?? 0).toBe(0);
    expect(seen[1]?.transportObj?.delivery_count).toBe(1);
    expect(hub.local.stats().devices[device('c2d-abandon')]?.c2dAbandoned).toBe(1);
  });

  it('dead-letters a rejected C2D message', async () => {
    const client = await connected('c2d-reject');
    const got = new Promise<C2DMessage>((resolve) => client.on('message', (m: C2DMessage) => resolve(m)));
    hub.local.sendC2D(device('c2d-reject'), { body: Buffer.from('nope') });
    await within(client.reject(await within(got, 10_000, 'c2d')), 5000, 'reject');
    const counters = await waitFor(() => {
      const c = hub.local.stats().devices[device('c2d-reject')];
      return c && c.c2dDeadLettered === 1 ? c : undefined;
    }, 5000, 'dead-lettered');
    expect(counters.c2dRejected).toBe(1);
    expect(counters.queuedC2D).toBe(0);
  });

  it('serves twin get, reported patches and desired notifications', async () => {
    const client = await connected('twin');
    const twin = await within(client.getTwin(), 10_000, 'getTwin');
    expect(twin.properties.desired.$version).toBe(1);

    await within(new Promise<void>((resolve, reject) => {
      twin.properties.reported.update({ firmware: '1.2.3' }, (err?: Error) => (err ? reject(err) : resolve()));
    }), 10_000, 'reported update');
    expect(hub.local.readTwin(device('twin')).reported.firmware).toBe('1.2.3');

    const desired = new Promise<Record<string, unknown>>((resolve) => {
      twin.on('properties.desired', (patch: Record<string, unknown>) => {
        if (patch.interval !== undefined) resolve(patch);
      });
    });
    // Desired updates flow only once the SDK's PUT on the twin link was answered, and the SDK
    // gives no signal for that, so the service side patches until one arrives (bounded).
    let received: Record<string, unknown> | undefined;
    void desired.then((p) => (received = p));
    for (let i = 0; i < 50 && received === undefined; i++) {
      hub.local.updateDesired(device('twin'), { interval: 30 });
      await new Promise((r) => setTimeout(r, 100));
    }
    const patch = await within(desired, 5000, 'desired patch');
    expect(patch.interval).toBe(30);
    expect(typeof patch.$version).toBe('number');

    const fresh = await within(client.getTwin(), 10_000, 'getTwin again');
    expect(fresh.properties.reported.firmware).toBe('1.2.3');

    // The core refuses reported properties over 32 KB; the refusal reaches the SDK as an error.
    const refused = await within(new Promise<Error | undefined>((resolve) => {
      fresh.properties.reported.update({ big: 'x'.repeat(40 * 1024) }, (err?: Error) => resolve(err));
    }), 10_000, 'oversize reported update');
    expect(refused).toBeInstanceOf(Error);
    expect(hub.local.readTwin(device('twin')).reported.big).toBeUndefined();
  });

  it('answers a direct method call', async () => {
    const client = await connected('method');
    client.onDeviceMethod('reboot', (request, response) => {
      void response.send(200, { delay: (request.payload as { delay: number }).delay, ok: true });
    });
    // The SDK attaches the method links asynchronously; connectTimeoutInSeconds lets the core wait.
    const invoke = async (): Promise<unknown> => hub.local.invokeMethod(device('method'), { methodName: 'reboot', payload: { delay: 5 }, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 });
    const answer = await within(invoke(), 15_000, 'method');
    expect(answer).toEqual({ status: 200, payload: { delay: 5, ok: true } });
  });

  // The SDK sends method answers and twin requests pre-settled. rhea frees a received delivery
  // only once the receiving side marks it settled too, in order, and its session window is what
  // is left of 2,048: a hub that leaves pre-settled deliveries alone stops the whole session after
  // 2,048 of them, telemetry included.
  it('keeps the session flowing past 2,048 pre-settled method answers and twin patches', async () => {
    const client = await connected('presettled');
    client.onDeviceMethod('ping', (_request, response) => void response.send(200, { pong: true }));
    const twin = await within(client.getTwin(), 10_000, 'getTwin');
    const invoke = (): Promise<unknown> => hub.local.invokeMethod(device('presettled'), { methodName: 'ping', payload: 1, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 });
    const patch = (k: number): Promise<void> => new Promise((resolve, reject) => twin.properties.reported.update({ k }, (err?: Error) => (err ? reject(err) : resolve())));
    const total = 2100;
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < total) {
        const k = next++;
        await within(k % 2 === 0 ? invoke() : patch(k), 10_000, `pre-settled request ${k}`);
      }
    };
    await Promise.all(Array.from({ length: 16 }, worker));
    await within(client.sendEvent(new Message('after')), 10_000, 'send after 2,100 pre-settled deliveries');
    expect(hub.local.telemetry({ deviceId: device('presettled') }).map((r) => r.body.toString())).toEqual(['after']);
  }, 120_000);

  it('renews its SAS token on the live connection and keeps working past the first expiry', async () => {
    const client = await connected('renewal', { tokenRenewal: { tokenValidTimeInSeconds: 4, tokenRenewalMarginInSeconds: 2 } });
    await within(client.sendEvent(new Message('before')), 10_000, 'send before');
    const renewals = (): number => hub.logger.entries.filter((e) => e.message === 'amqp put-token accepted' && e.fields.deviceId === device('renewal') && e.fields.renewal === true).length;
    await waitFor(() => (renewals() >= 3 ? true : undefined), 15_000, 'three renewals');
    // The first token has expired by now; only the renewals keep the links attached.
    await within(client.sendEvent(new Message('after')), 10_000, 'send after');
    const bodies = hub.local.telemetry({ deviceId: device('renewal') }).map((r) => r.body.toString());
    expect(bodies).toEqual(['before', 'after']);
    expect(hub.logger.entries.some((e) => e.message === 'amqp identity ended' && e.fields.deviceId === device('renewal'))).toBe(false);
  });

  it('ends the connection and the identity in the hub when the client closes', async () => {
    const client = await sdkClient(hub, transport, device('closer'));
    await within(client.open(), 10_000, 'open');
    const connected = (): boolean => hub.local.stats().connectedIdentities.some((i) => i.deviceId === device('closer'));
    expect(connected()).toBe(true);
    const before = hub.local.stats().connections[transport];
    await within(client.close(), 5000, 'close');
    await waitFor(() => (!connected() && hub.local.stats().connections[transport] === before - 1 ? true : undefined), 5000, 'connection ended');
  });
});
