// The official azure-iot-device Client over Mqtt and MqttWs against the MQTT front-end, with the
// hub's CA passed as `ca` (verification on): telemetry, C2D, twin, methods, SAS renewal.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Message, type Client, type Twin } from 'azure-iot-device';
import { NoRetry } from 'azure-iot-common';
import type { LocalHub } from '../src/index.ts';
import { deviceKey, startTestHub } from './support/mqtt-harness.ts';
import { azureClient, waitFor } from './support/azure-clients.ts';

const WAIT_MS = 10_000;
let hub: LocalHub;
const open: Client[] = [];

beforeAll(async () => {
  ({ hub } = await startTestHub());
});

afterAll(async () => {
  for (const client of open) await client.close().catch(() => undefined);
  await hub?.close();
});

async function connected(transport: 'mqtt' | 'mqtt-ws', deviceId: string, opts: Parameters<typeof azureClient>[4] = {}): Promise<Client> {
  const client = await azureClient(hub, transport, deviceId, deviceKey(hub, deviceId), opts);
  open.push(client);
  await client.open();
  return client;
}

describe.each(['mqtt', 'mqtt-ws'] as const)('Azure device SDK over %s', (transport) => {
  it('sends telemetry with system and application properties', async () => {
    const id = `sdk-tel-${transport}`;
    const client = await connected(transport, id);
    const message = new Message(JSON.stringify({ t: 21.5 }));
    message.messageId = 'mid-1';
    message.correlationId = 'cid-1';
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('k 1', 'v/1&x');
    await client.sendEvent(message);
    const [record] = hub.telemetry({ deviceId: id });
    expect(record?.body.toString()).toBe('{"t":21.5}');
    expect(record?.protocol).toBe(transport);
    expect(record?.systemProperties).toMatchObject({ messageId: 'mid-1', correlationId: 'cid-1', contentType: 'application/json', contentEncoding: 'utf-8' });
    expect(record?.properties).toEqual({ 'k 1': 'v/1&x' });
    await client.close();
  });

  it('receives C2D with properties, and the PUBACK completes it', async () => {
    const id = `sdk-c2d-${transport}`;
    const client = await connected(transport, id);
    const received: Message[] = [];
    client.on('message', (msg: Message) => {
      received.push(msg);
      void client.complete(msg);
    });
    // The subscription is fire-and-forget in the SDK; the hub queues until it arrives.
    hub.sendC2D(id, { body: Buffer.from('hello device'), messageId: 'c2d-1', correlationId: 'corr', properties: { color: 'red' } });
    const msg = await waitFor(() => received[0], WAIT_MS, 'C2D message');
    expect(msg.getData().toString()).toBe('hello device');
    expect(msg.messageId).toBe('c2d-1');
    expect(msg.correlationId).toBe('corr');
    expect(msg.properties.getValue('color')).toBe('red');
    await waitFor(() => (hub.counters(id).c2dCompleted === 1 ? true : undefined), WAIT_MS, 'completion');
    expect(hub.stats().devices[id]?.queuedC2D).toBe(0);
    await client.close();
  });

  it('reads the twin, patches reported properties and receives desired patches', async () => {
    const id = `sdk-twin-${transport}`;
    const client = await connected(transport, id);
    hub.updateDesired(id, { mode: 'eco' });
    const twin: Twin = await client.getTwin();
    expect(twin.properties.desired.mode).toBe('eco');
    const versionAtGet = twin.properties.desired.$version as number;
    await new Promise<void>((resolve, reject) => twin.properties.reported.update({ fw: '1.2.3', nested: { ok: true } }, (err?: Error) => (err ? reject(err) : resolve())));
    expect(hub.readTwin(id).reported).toMatchObject({ fw: '1.2.3', nested: { ok: true } });

    const desired: Array<Record<string, unknown>> = [];
    twin.on('properties.desired', (delta: Record<string, unknown>) => desired.push(delta));
    // The first event replays the desired section from the GET; wait for the subscription to be live.
    await waitFor(() => (hub.stats().connectedIdentities.some((c) => c.deviceId === id) && desired.length > 0 ? true : undefined), WAIT_MS, 'initial desired');
    await waitFor(() => {
      // Re-send until the SDK's desired subscription is in place (SUBSCRIBE is fire-and-forget).
      if (desired.some((d) => d.mode === 'turbo')) return true;
      hub.updateDesired(id, { mode: 'turbo' });
      return undefined;
    }, WAIT_MS, 'desired patch');
    // The patch carries the new desired version, above the one the GET returned.
    expect(desired.find((d) => d.mode === 'turbo')?.$version).toBeGreaterThan(versionAtGet);
    await client.close();
  });

  it('answers a direct method', async () => {
    const id = `sdk-method-${transport}`;
    const client = await connected(transport, id);
    client.onDeviceMethod('reboot', (request, response) => {
      void response.send(200, { echoed: request.payload as unknown, rid: request.requestId });
    });
    const result = await hub.invokeMethod(id, { methodName: 'reboot', payload: { delay: 5 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 });
    expect(result.status).toBe(200);
    expect(result.payload).toMatchObject({ echoed: { delay: 5 } });
    await client.close();
  });

  it('keeps subscriptions through SAS renewal reconnects (persistent session)', async () => {
    const id = `sdk-renew-${transport}`;
    const connects: string[] = [];
    const onConnected = (s: { deviceId: string; connectionId: string }): void => { if (s.deviceId === id) connects.push(s.connectionId); };
    hub.on('connected', onConnected);
    const client = await connected(transport, id, { tokenRenewal: { tokenValidTimeInSeconds: 4, tokenRenewalMarginInSeconds: 2 } });
    const received: string[] = [];
    client.on('message', (msg: Message) => { received.push(msg.getData().toString()); void client.complete(msg); });
    hub.sendC2D(id, { body: Buffer.from('before') });
    await waitFor(() => (received.includes('before') ? true : undefined), WAIT_MS, 'C2D before renewal');
    // The SDK renews every (4 − 2) s by disconnecting and reconnecting, without re-subscribing.
    await waitFor(() => (connects.length >= 2 ? true : undefined), WAIT_MS, 'renewal reconnect');
    hub.sendC2D(id, { body: Buffer.from('after') });
    await waitFor(() => (received.includes('after') ? true : undefined), WAIT_MS, 'C2D after renewal');
    hub.off('connected', onConnected);
    await client.close();
  });

  it('refuses a wrong key with UnauthorizedError and keeps serving others', async () => {
    const id = `sdk-bad-${transport}`;
    deviceKey(hub, id);
    const client = await azureClient(hub, transport, id, Buffer.alloc(32, 3).toString('base64'));
    client.setRetryPolicy(new NoRetry());
    await expect(client.open()).rejects.toMatchObject({ name: 'UnauthorizedError' });
    const good = await connected(transport, `${id}-good`);
    await good.sendEvent(new Message('still here'));
    await good.close();
  });
});
