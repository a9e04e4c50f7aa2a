// The service REST API on the real local hub's HTTPS listener: IoT Hub's registry, twin and
// method paths, and the /local/ extensions (C2D send, telemetry listing, stats).
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { createSasToken, silentLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { API, hubRequest, serviceHeaders, waitUntil, type HubResponse } from './support/https-helpers.ts';

let hub: LocalHub;
const clients: Client[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, devices: ['twin-dev', 'method-dev', 'method-live', 'conn-dev', 'poll-dev', 'tel-dev', 'full-dev'], logger: silentLogger });
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await hub?.close();
});

function service(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<HubResponse> {
  return hubRequest(hub, { method, path, headers: serviceHeaders(hub, headers), ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }) });
}

function deviceToken(deviceId: string): string {
  const auth = hub.getDevice(deviceId)?.authentication;
  if (auth?.type !== 'sas') throw new Error(`${deviceId} is not a SAS device`);
  return createSasToken(`${hub.hostName}/devices/${deviceId}`, auth.primaryKey, Math.floor(Date.now() / 1000) + 3600);
}

interface DeviceJson {
  deviceId: string;
  etag: string;
  generationId: string;
  status: string;
  connectionState: string;
  authentication: { type: string; symmetricKey: { primaryKey: string | null; secondaryKey: string | null }; x509Thumbprint: { primaryThumbprint: string | null } };
}

describe('service REST API: registry', () => {
  it('creates, reads, updates with If-Match and deletes a device', async () => {
    const created = await service('PUT', `/devices/reg-1?${API}`, { deviceId: 'reg-1' });
    expect(created.status).toBe(200);
    const device = created.json() as DeviceJson;
    expect(device).toMatchObject({ deviceId: 'reg-1', status: 'enabled', connectionState: 'Disconnected', authentication: { type: 'sas' } });
    expect(device.authentication.symmetricKey.primaryKey).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(hub.getDevice('reg-1')?.etag).toBe(device.etag);

    const read = await service('GET', `/devices/reg-1?${API}`);
    expect(read.status).toBe(200);
    expect(read.json()).toEqual(device);

    const list = await service('GET', `/devices?${API}`);
    expect((list.json() as DeviceJson[]).map((d) => d.deviceId)).toContain('reg-1');

    // Updating an existing device needs If-Match, as in IoT Hub.
    const noEtag = await service('PUT', `/devices/reg-1?${API}`, { deviceId: 'reg-1', status: 'disabled' });
    expect(noEtag.status).toBe(409);
    expect(noEtag.json()).toMatchObject({ errorCode: 409001 });

    const updated = await service('PUT', `/devices/reg-1?${API}`, { deviceId: 'reg-1', status: 'disabled' }, { 'If-Match': `"${device.etag}"` });
    expect(updated.status).toBe(200);
    const after = updated.json() as DeviceJson;
    expect(after.status).toBe('disabled');
    expect(after.etag).not.toBe(device.etag);

    const staleDelete = await service('DELETE', `/devices/reg-1?${API}`, undefined, { 'If-Match': `"${device.etag}"` });
    expect(staleDelete.status).toBe(412);
    expect(staleDelete.json()).toMatchObject({ errorCode: 412001 });

    const deleted = await service('DELETE', `/devices/reg-1?${API}`, undefined, { 'If-Match': `"${after.etag}"` });
    expect(deleted.status).toBe(204);
    const gone = await service('GET', `/devices/reg-1?${API}`);
    expect(gone.status).toBe(404);
    expect(gone.json()).toMatchObject({ errorCode: 404001 });
  });

  it('creates a device with given keys or an X.509 thumbprint', async () => {
    const primaryKey = randomBytes(32).toString('base64');
    const secondaryKey = randomBytes(32).toString('base64');
    const sas = await service('PUT', `/devices/reg-keys?${API}`, { authentication: { type: 'sas', symmetricKey: { primaryKey, secondaryKey } } });
    expect(sas.status).toBe(200);
    expect((sas.json() as DeviceJson).authentication.symmetricKey).toEqual({ primaryKey, secondaryKey });

    const thumbprint = 'AB'.repeat(20);
    const x509 = await service('PUT', `/devices/reg-x509?${API}`, { authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: thumbprint } } });
    expect(x509.status).toBe(200);
    expect((x509.json() as DeviceJson).authentication).toMatchObject({ type: 'selfSigned', x509Thumbprint: { primaryThumbprint: thumbprint } });
  });

  it('names the bad field of a device body', async () => {
    const badKey = await service('PUT', `/devices/reg-bad?${API}`, { authentication: { symmetricKey: { primaryKey: 'short', secondaryKey: 'short' } } });
    expect(badKey.status).toBe(400);
    expect(badKey.json()).toMatchObject({ errorCode: 400004, Message: expect.stringContaining('authentication.symmetricKey.primaryKey') });
    const mismatch = await service('PUT', `/devices/reg-bad?${API}`, { deviceId: 'other' });
    expect(mismatch.status).toBe(400);
    const notJson = await service('PUT', `/devices/reg-bad?${API}`, '{"deviceId":');
    expect(notJson.status).toBe(400);
    expect(hub.getDevice('reg-bad')).toBeUndefined();
  });

  it('refuses requests without a service token, or with a device token', async () => {
    const none = await hubRequest(hub, { method: 'GET', path: `/devices?${API}` });
    expect(none.status).toBe(401);
    const asDevice = await hubRequest(hub, { method: 'GET', path: '/local/stats', headers: { Authorization: deviceToken('twin-dev') } });
    expect(asDevice.status).toBe(401);
    expect(asDevice.json()).toMatchObject({ errorCode: 401003 });
  });
});

describe('service REST API: twins and methods', () => {
  it('reads a twin and patches desired properties with If-Match', async () => {
    const twin = await service('GET', `/twins/twin-dev?${API}`);
    expect(twin.status).toBe(200);
    const doc = twin.json() as { deviceId: string; etag: string; version: number; properties: { desired: { $version: number } } };
    expect(doc).toMatchObject({ deviceId: 'twin-dev', authenticationType: 'sas', properties: { desired: { $version: 1 }, reported: { $version: 1 } } });

    const patched = await service('PATCH', `/twins/twin-dev?${API}`, { properties: { desired: { fan: 'on' } } }, { 'If-Match': `"${doc.etag}"` });
    expect(patched.status).toBe(200);
    const after = patched.json() as { etag: string; properties: { desired: Record<string, unknown> } };
    expect(after.properties.desired).toMatchObject({ fan: 'on', $version: 2 });
    expect(hub.readTwin('twin-dev').desired).toMatchObject({ fan: 'on' });

    const stale = await service('PATCH', `/twins/twin-dev?${API}`, { properties: { desired: { fan: 'off' } } }, { 'If-Match': `"${doc.etag}"` });
    expect(stale.status).toBe(412);
    expect(hub.readTwin('twin-dev').desired).toMatchObject({ fan: 'on' });

    const bad = await service('PATCH', `/twins/twin-dev?${API}`, { properties: { reported: { x: 1 } } });
    expect(bad.status).toBe(400);
    expect(bad.json()).toMatchObject({ Message: expect.stringContaining('properties.desired') });
  });

  it('answers a method on an offline device with 404103', async () => {
    const res = await service('POST', `/twins/method-dev/methods?${API}`, { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 0 });
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ errorCode: 404103 });
  });

  it('invokes a method on a connected device and maps a silent device to 504101', async () => {
    const client = Client.fromConnectionString(hub.deviceConnectionString('method-live', { protocol: 'mqtt' }), Mqtt);
    clients.push(client);
    client.on('error', () => undefined);
    await client.setOptions({ ca: hub.ca });
    await client.open();
    client.onDeviceMethod('echo', (request, response) => void response.send(200, { echoed: request.payload }));
    // Ignoring a request is what a hung device does; the hub must time out, not hang.
    client.onDeviceMethod('hang', () => undefined);

    // Subscribing is fire-and-forget in the SDK: IoT Hub answers 404103 until the device listens.
    const ok = await waitUntil(async () => {
      const res = await service('POST', `/twins/method-live/methods?${API}`, { methodName: 'echo', payload: { n: 1 }, responseTimeoutInSeconds: 5 });
      return res.status === 404 ? undefined : res;
    }, 'the method subscription');
    expect(ok.status).toBe(200);
    expect(ok.json()).toEqual({ status: 200, payload: { echoed: { n: 1 } } });

    const silent = await service('POST', `/twins/method-live/methods?${API}`, { methodName: 'hang', responseTimeoutInSeconds: 5 });
    expect(silent.status).toBe(504);
    expect(silent.json()).toMatchObject({ errorCode: 504101 });
  });

  it('names the bad field of a method body', async () => {
    const res = await service('POST', `/twins/method-dev/methods?${API}`, { payload: {}, responseTimeoutInSeconds: 1 });
    expect(res.status).toBe(400);
    expect((res.json() as { Message: string }).Message).toMatch(/methodName/);
  });

  it('answers 404001 for the twin of an unknown device', async () => {
    const res = await service('GET', `/twins/nobody?${API}`);
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ errorCode: 404001 });
  });
});

describe('service REST API: /local/ extensions', () => {
  it('sends C2D, which a device polls over HTTPS, and stats count every poll', async () => {
    const sent = await service('POST', '/local/devices/poll-dev/c2d', { body: 'hello device', properties: { color: 'blue' }, messageId: 'svc-1', ttlSeconds: 600 });
    expect(sent.status).toBe(201);
    expect(sent.json()).toMatchObject({ messageId: 'svc-1' });

    const auth = { Authorization: deviceToken('poll-dev') };
    const poll = await hubRequest(hub, { method: 'GET', path: `/devices/poll-dev/messages/devicebound?${API}`, headers: auth });
    expect(poll.status).toBe(200);
    expect(poll.body.toString()).toBe('hello device');
    expect(poll.headers.etag).toMatch(/^"[^"]+"$/);
    expect(poll.headers).toMatchObject({ 'iothub-messageid': 'svc-1', 'iothub-to': '/devices/poll-dev/messages/devicebound', 'iothub-app-color': 'blue', 'iothub-deliverycount': '0' });
    const lockToken = String(poll.headers.etag).slice(1, -1);

    const empty = await hubRequest(hub, { method: 'GET', path: `/devices/poll-dev/messages/devicebound?${API}`, headers: auth });
    expect(empty.status).toBe(204);

    const stats = await service('GET', '/local/stats');
    expect(stats.status).toBe(200);
    const body = stats.json() as { connections: Record<string, number>; devices: Record<string, { httpsC2DPolls: number; queuedC2D: number }> };
    expect(body.devices['poll-dev']).toMatchObject({ httpsC2DPolls: 2, queuedC2D: 1 });
    expect(body.connections).toHaveProperty('https');

    const completed = await hubRequest(hub, { method: 'DELETE', path: `/devices/poll-dev/messages/devicebound/${lockToken}?${API}`, headers: { ...auth, 'If-Match': lockToken } });
    expect(completed.status).toBe(204);
    expect(hub.counters('poll-dev').c2dCompleted).toBe(1);
    const again = await hubRequest(hub, { method: 'DELETE', path: `/devices/poll-dev/messages/devicebound/${lockToken}?${API}`, headers: auth });
    expect(again.status).toBe(412);
    expect(again.json()).toMatchObject({ errorCode: 412002 });
  });

  it('counts a keep-alive HTTPS device connection while it is open', async () => {
    // Earlier tests' Connection: close sockets may still be closing on the server side.
    await waitUntil(() => (hub.stats().connections.https === 0 ? true : undefined), 'earlier HTTPS connections to close');
    const agent = new https.Agent({ keepAlive: true, ca: hub.ca });
    try {
      const res = await new Promise<number>((resolve, reject) => {
        const req = https.request({ host: hub.address, port: hub.ports.https, servername: hub.hostName, agent, method: 'GET', path: `/devices/conn-dev/messages/devicebound?${API}`, headers: { Authorization: deviceToken('conn-dev') } }, (r) => {
          r.resume();
          r.on('end', () => resolve(r.statusCode ?? 0));
        });
        req.on('error', reject);
        req.end();
      });
      expect(res).toBe(204);
      const open = hub.stats();
      expect(open.connections.https).toBe(1);
    } finally {
      agent.destroy();
    }
    await waitUntil(() => (hub.stats().connections.https === 0 ? true : undefined), 'the HTTPS connection to be counted as closed');
  });

  it('validates the C2D body and names the field', async () => {
    const missing = await service('POST', '/local/devices/poll-dev/c2d', { properties: {} });
    expect(missing.status).toBe(400);
    expect((missing.json() as { Message: string }).Message).toContain('body');
    const typo = await service('POST', '/local/devices/poll-dev/c2d', { body: 'x', ttl: 5 });
    expect(typo.status).toBe(400);
    expect((typo.json() as { Message: string }).Message).toContain('ttl');
    const badProps = await service('POST', '/local/devices/poll-dev/c2d', { body: 'x', properties: { n: 1 } });
    expect(badProps.status).toBe(400);
    expect((badProps.json() as { Message: string }).Message).toContain('properties.n');
  });

  it('answers 403004 when the device queue holds 50 messages', async () => {
    for (let i = 0; i < 50; i++) {
      const res = await service('POST', '/local/devices/full-dev/c2d', { body: `m${i}` });
      expect(res.status).toBe(201);
    }
    const res = await service('POST', '/local/devices/full-dev/c2d', { body: 'one too many' });
    expect(res.status).toBe(403);
    expect(res.json()).toMatchObject({ errorCode: 403004 });
  });

  it('lists received telemetry with properties, protocol and base64 for non-UTF-8 bodies', async () => {
    const auth = { Authorization: deviceToken('tel-dev') };
    const events = `/devices/tel-dev/messages/events?${API}`;
    expect((await hubRequest(hub, { method: 'POST', path: events, headers: { ...auth, 'iothub-app-room': 'kitchen', 'iothub-messageid': 't-1' }, body: 'first' })).status).toBe(204);
    expect((await hubRequest(hub, { method: 'POST', path: events, headers: auth, body: Buffer.from([0xff, 0xfe, 0x00]) })).status).toBe(204);

    const all = await service('GET', '/local/devices/tel-dev/telemetry');
    expect(all.status).toBe(200);
    const records = all.json() as Array<{ sequenceNumber: number; body: string; bodyBase64?: string; properties: Record<string, string>; systemProperties: Record<string, string>; protocol: string; receivedAt: string }>;
    expect(records).toHaveLength(2);
    expect(records[0]).toMatchObject({ body: 'first', properties: { room: 'kitchen' }, systemProperties: { messageId: 't-1' }, protocol: 'https' });
    expect(records[0]?.bodyBase64).toBeUndefined();
    expect(Number.isNaN(Date.parse(records[0]?.receivedAt ?? ''))).toBe(false);
    expect(records[1]?.bodyBase64).toBe(Buffer.from([0xff, 0xfe, 0x00]).toString('base64'));

    const later = await service('GET', `/local/devices/tel-dev/telemetry?after=${records[0]?.sequenceNumber}`);
    expect((later.json() as unknown[]).length).toBe(1);
    const bad = await service('GET', '/local/devices/tel-dev/telemetry?after=soon');
    expect(bad.status).toBe(400);
    expect((bad.json() as { Message: string }).Message).toContain('after');
  });
});
