// Conformance: the official azure-iot-device Client (not Switchyard's wrapper), over each of the
// five transports, against the local hub. What a protocol cannot do (MQTT has no reject/abandon,
// HTTPS has no twin or methods) is asserted as such rather than skipped.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Message, type Client } from 'azure-iot-device';
import { startLocalHub, type LocalHub } from '../src/index.ts';
import { TRANSPORTS, azureClient, waitFor, type TransportName } from './support/azure-clients.ts';

const canSettleNegatively = (t: TransportName): boolean => t === 'amqp' || t === 'amqp-ws' || t === 'https';
const hasTwinAndMethods = (t: TransportName): boolean => t !== 'https';

let stateDir: string;
let hub: LocalHub;

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'switchyard-conformance-'));
  hub = await startLocalHub({ stateDir });
});

afterAll(async () => {
  await hub?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

function keyOf(deviceId: string): string {
  const record = hub.createDevice(deviceId);
  if (record.authentication.type !== 'sas') throw new Error('expected a SAS device');
  return record.authentication.primaryKey;
}

describe.each(TRANSPORTS)('official Azure client over %s', (transport) => {
  const deviceId = `conf-${transport}`;
  let key: string;
  let client: Client;
  // One 'message' listener for the client's lifetime: removing the last listener makes the SDK
  // detach its C2D link, and a test that re-adds one at once would race that detach.
  let onMessage: (m: Message) => void = () => undefined;

  beforeAll(async () => {
    key = keyOf(deviceId);
    client = await azureClient(hub, transport, deviceId, key);
    await client.open();
    client.on('message', (m: Message) => onMessage(m));
  });

  afterAll(async () => {
    await client?.close();
  });

  it('delivers telemetry with system and application properties', async () => {
    const msg = new Message(JSON.stringify({ temperature: 21.5 }));
    msg.messageId = `m-${transport}`;
    msg.correlationId = 'corr-1';
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    msg.properties.add('unit', 'celsius');
    // A key that is not an HTTP token makes the SDK's Http transport throw an uncaught exception
    // (it becomes a header name), so only the other transports get one.
    const oddKey = transport === 'https' ? 'odd-key' : 'spaced key';
    msg.properties.add(oddKey, 'a value/with&symbols');
    await client.sendEvent(msg);

    const record = hub.telemetry({ deviceId }).find((r) => r.systemProperties.messageId === `m-${transport}`);
    expect(record).toBeDefined();
    expect(record!.protocol).toBe(transport);
    expect(JSON.parse(record!.body.toString('utf8'))).toEqual({ temperature: 21.5 });
    expect(record!.systemProperties.correlationId).toBe('corr-1');
    expect(record!.properties.unit).toBe('celsius');
    expect(record!.properties[oddKey]).toBe('a value/with&symbols');
  });

  it('receives a cloud-to-device message and completes it', async () => {
    const received: Array<{ data: string; props: Record<string, string>; messageId: string }> = [];
    onMessage = (m: Message): void => {
      const props: Record<string, string> = {};
      for (let i = 0; i < m.properties.count(); i++) {
        const item = m.properties.getItem(i);
        props[item.key.replace(/^iothub-app-/, '')] = item.value;
      }
      received.push({ data: m.data.toString(), props, messageId: String(m.messageId) });
      client.complete(m).catch(() => undefined); // the hub's completion counter is the assertion
    };
    hub.sendC2D(deviceId, { body: Buffer.from('turn-on'), properties: { color: 'red' }, messageId: `c2d-${transport}` });
    const got = await waitFor(() => received[0], 15_000, 'C2D delivery');
    expect(got).toEqual({ data: 'turn-on', props: { color: 'red' }, messageId: `c2d-${transport}` });
    await waitFor(() => (hub.counters(deviceId).c2dCompleted === 1 ? true : undefined), 10_000, 'completion');
    expect(hub.stats().devices[deviceId]?.queuedC2D).toBe(0);
  });

  if (canSettleNegatively(transport)) it('abandons (redelivered) and rejects (dead-lettered) messages', async () => {
    const deliveries: string[] = [];
    const settleErrors: string[] = [];
    onMessage = (m: Message): void => {
      const body = m.data.toString();
      deliveries.push(body);
      const settle = body === 'abandon-me' && deliveries.filter((d) => d === body).length === 1 ? client.abandon(m)
        : body === 'reject-me' ? client.reject(m) : client.complete(m);
      settle.catch((err: Error) => settleErrors.push(err.message));
    };
    const before = hub.counters(deviceId);
    hub.sendC2D(deviceId, { body: Buffer.from('abandon-me') });
    await waitFor(() => (deliveries.filter((d) => d === 'abandon-me').length === 2 ? true : undefined), 15_000, 'redelivery after abandon');
    hub.sendC2D(deviceId, { body: Buffer.from('reject-me') });
    await waitFor(() => (hub.counters(deviceId).c2dRejected === before.c2dRejected + 1 ? true : undefined), 15_000, 'rejection');
    const after = hub.counters(deviceId);
    expect(after.c2dAbandoned).toBe(before.c2dAbandoned + 1);
    expect(after.c2dDeadLettered).toBe(before.c2dDeadLettered + 1);
    expect(deliveries.filter((d) => d === 'reject-me')).toHaveLength(1);
    expect(settleErrors).toEqual([]);

  });

  if (!canSettleNegatively(transport)) it('refuses reject and abandon, as IoT Hub does over MQTT', async () => {
    const m = new Message('x');
    await expect(client.reject(m)).rejects.toThrow();
    await expect(client.abandon(m)).rejects.toThrow();
  });

  if (hasTwinAndMethods(transport)) it('reads the twin, reports properties and hears desired changes', async () => {
    const twin = await client.getTwin();
    await new Promise<void>((resolve, reject) => twin.properties.reported.update({ firmware: '1.2.3', battery: 88 }, (err?: Error) => (err ? reject(err) : resolve())));
    expect(hub.readTwin(deviceId).reported).toMatchObject({ firmware: '1.2.3', battery: 88 });

    const desired: Array<Record<string, unknown>> = [];
    twin.on('properties.desired', (patch: Record<string, unknown>) => desired.push(patch));
    // The desired subscription is fire-and-forget in the SDK, so push a patch until one lands.
    let n = 0;
    await waitFor(() => {
      n++;
      if (desired.some((d) => typeof d.interval === 'number' && d.interval >= 1)) return true;
      hub.updateDesired(deviceId, { interval: n });
      return undefined;
    }, 15_000, 'desired property notification');
    const latest = desired.at(-1)!;
    expect(latest.$version).toBe(hub.readTwin(deviceId).desired.$version);
  });

  if (hasTwinAndMethods(transport)) it('answers a direct method', async () => {
    client.onDeviceMethod('reboot', (request, response) => {
      void response.send(200, { rebooting: true, delay: (request.payload as { delay: number }).delay });
    });
    const result = await waitFor(async () => {
      try {
        return await hub.invokeMethod(deviceId, { methodName: 'reboot', payload: { delay: 5 }, responseTimeoutInSeconds: 5 });
      } catch {
        return undefined; // not subscribed yet: IoT Hub answers 404103 until the device listens
      }
    }, 15_000, 'method subscription');
    expect(result).toEqual({ status: 200, payload: { rebooting: true, delay: 5 } });
  });

  if (!hasTwinAndMethods(transport)) it('has no twin over HTTPS', async () => {
    await expect(client.getTwin()).rejects.toThrow(/not implemented/i);
  });
});

describe('restart', () => {
  it('keeps registry and queued messages, and connected devices come back to the restarted hub', async () => {
    const deviceIds = TRANSPORTS.map((t) => `conf-restart-${t}`);
    const clients = await Promise.all(TRANSPORTS.map(async (transport, i) => {
      const client = await azureClient(hub, transport, deviceIds[i]!, keyOf(deviceIds[i]!));
      await client.open();
      await client.sendEvent(new Message(`before-restart-${transport}`));
      return client;
    }));
    try {
      const ports = { ...hub.ports };
      hub.sendC2D(deviceIds[0]!, { body: Buffer.from('queued-before-restart') });
      await hub.close();
      hub = await startLocalHub({ stateDir, ports });
      expect(hub.stats().devices[deviceIds[0]!]?.queuedC2D).toBe(1);

      // Same clients, no re-open: the SDK notices the dropped connection and reconnects with the
      // same keys, which the restarted hub still knows.
      await Promise.all(TRANSPORTS.map((transport, i) => clients[i]!.sendEvent(new Message(`after-restart-${transport}`))));
      for (const [i, transport] of TRANSPORTS.entries()) {
        expect(hub.telemetry({ deviceId: deviceIds[i]! }).some((r) => r.body.toString() === `after-restart-${transport}`)).toBe(true);
      }
    } finally {
      await Promise.all(clients.map((c) => c.close().catch(() => undefined)));
    }
  }, 90_000);
});
