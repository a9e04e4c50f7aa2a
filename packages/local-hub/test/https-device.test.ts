// The HTTPS device API against the real local hub, driven by the official azure-iot-device Client
// with the Http transport (TLS verification on: the hub CA is passed as `ca`), plus plain HTTPS
// requests for what the SDK never sends: bad credentials, bad paths, oversized and malformed bodies.
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, Message } from 'azure-iot-device';
import { Http } from 'azure-iot-device-http';
import { NoRetry } from 'azure-iot-common';
import { createSasToken, silentLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { API, hubRequest, serviceHeaders, waitUntil } from './support/https-helpers.ts';

let hub: LocalHub;
const clients: Client[] = [];
const refusals: Array<{ deviceId?: string; what: string; why: string }> = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, devices: ['tel', 'batch', 'c2d-complete', 'c2d-abandon', 'c2d-reject', 'upload', 'neg-a', 'neg-b'], logger: silentLogger });
  hub.on('refused', (event) => refusals.push(event));
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await hub?.close();
});

function deviceKey(deviceId: string): string {
  const auth = hub.getDevice(deviceId)?.authentication;
  if (auth?.type !== 'sas') throw new Error(`${deviceId} is not a SAS device`);
  return auth.primaryKey;
}

function deviceToken(deviceId: string, options: { key?: string; expiresInSeconds?: number } = {}): string {
  const expiry = Math.floor(Date.now() / 1000) + (options.expiresInSeconds ?? 3600);
  return createSasToken(`${hub.hostName}/devices/${deviceId}`, options.key ?? deviceKey(deviceId), expiry);
}

async function httpClient(connectionString: string, extra: Record<string, unknown> = {}): Promise<Client> {
  const client = Client.fromConnectionString(connectionString, Http);
  // One setOptions call (it replaces, never merges); Http only calls back when receivePolicy is set.
  await client.setOptions({ ...extra, ca: hub.ca, http: { agent: hub.redirectAgent(), receivePolicy: { interval: 0.2, drain: true } } } as Parameters<Client['setOptions']>[0]);
  client.setRetryPolicy(new NoRetry());
  client.on('error', () => undefined);
  clients.push(client);
  return client;
}

function sdkClient(deviceId: string): Promise<Client> {
  return httpClient(hub.deviceConnectionString(deviceId, { protocol: 'https' }));
}

async function sendC2D(deviceId: string, body: Record<string, unknown>): Promise<string> {
  const res = await hubRequest(hub, { method: 'POST', path: `/local/devices/${deviceId}/c2d`, headers: serviceHeaders(hub), body: JSON.stringify(body) });
  expect(res.status).toBe(201);
  return (res.json() as { messageId: string }).messageId;
}

describe('HTTPS device API with the Azure SDK Http transport', () => {
  it('accepts telemetry with system and application properties', async () => {
    const client = await sdkClient('tel');
    const message = new Message('{"temp":21}');
    message.messageId = 'm-1';
    message.correlationId = 'c-1';
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('color', 'red');
    message.properties.add('unit', 'C');
    await client.sendEvent(message);

    const [record] = hub.telemetry({ deviceId: 'tel' });
    expect(record?.body.toString('utf8')).toBe('{"temp":21}');
    expect(record?.protocol).toBe('https');
    expect(record?.properties).toEqual({ color: 'red', unit: 'C' });
    expect(record?.systemProperties).toMatchObject({ messageId: 'm-1', correlationId: 'c-1', contentType: 'application/json', contentEncoding: 'utf-8' });
  });

  it('accepts a batch (application/vnd.microsoft.iothub.json) as separate messages', async () => {
    const client = await sdkClient('batch');
    const first = new Message(Buffer.from([0, 1, 2, 255]));
    const second = new Message('two');
    second.properties.add('k', 'v');
    await client.sendEventBatch([first, second]);

    const records = hub.telemetry({ deviceId: 'batch' });
    expect(records.map((r) => r.body.toString('hex'))).toEqual(['000102ff', Buffer.from('two').toString('hex')]);
    expect(records[0]?.properties).toEqual({});
    expect(records[1]?.properties).toEqual({ k: 'v' });
  });

  it('delivers C2D by polling and completes it', async () => {
    const client = await sdkClient('c2d-complete');
    const received: Message[] = [];
    client.on('message', (msg: Message) => {
      received.push(msg);
      void client.complete(msg);
    });
    const messageId = await sendC2D('c2d-complete', { body: 'switch on', properties: { mode: 'fast' }, messageId: 'c2d-1' });
    await waitUntil(() => (hub.counters('c2d-complete').c2dCompleted === 1 ? true : undefined), 'the C2D completion');

    expect(messageId).toBe('c2d-1');
    expect(received).toHaveLength(1);
    expect(received[0]?.messageId).toBe('c2d-1');
    expect(String(received[0]?.data)).toBe('switch on');
    // The SDK keeps the iothub-app- prefix on HTTP properties.
    expect(received[0]?.properties.getValue('iothub-app-mode')).toBe('fast');
    expect(hub.stats().devices['c2d-complete']?.queuedC2D).toBe(0);
    expect(hub.counters('c2d-complete').httpsC2DPolls).toBeGreaterThanOrEqual(1);
  });

  it('abandons a C2D message, gets it again, then completes it', async () => {
    const client = await sdkClient('c2d-abandon');
    let deliveries = 0;
    client.on('message', (msg: Message) => {
      deliveries++;
      void (deliveries === 1 ? client.abandon(msg) : client.complete(msg));
    });
    await sendC2D('c2d-abandon', { body: 'retry me' });
    await waitUntil(() => (hub.counters('c2d-abandon').c2dCompleted === 1 ? true : undefined), 'the completion after abandon');
    expect(deliveries).toBe(2);
    expect(hub.counters('c2d-abandon').c2dAbandoned).toBe(1);
  });

  it('rejects a C2D message, which leaves the queue', async () => {
    const client = await sdkClient('c2d-reject');
    client.on('message', (msg: Message) => void client.reject(msg));
    await sendC2D('c2d-reject', { body: 'bad command' });
    await waitUntil(() => (hub.counters('c2d-reject').c2dRejected === 1 ? true : undefined), 'the rejection');
    expect(hub.counters('c2d-reject').c2dCompleted).toBe(0);
    expect(hub.stats().devices['c2d-reject']?.queuedC2D).toBe(0);
  });

  it('uploads a file through the SDK: SAS request, blob PUTs, notification', async () => {
    const client = await sdkClient('upload');
    // @azure/storage-blob ignores the client's `ca` and uses https.globalAgent; trust the hub CA
    // there (verification stays on) and restore it afterwards.
    const previousCa = https.globalAgent.options.ca;
    https.globalAgent.options.ca = hub.ca;
    try {
      const content = randomBytes(70_000);
      await client.uploadToBlob('logs/today.bin', Readable.from([content]), content.length);
      const res = await hubRequest(hub, { method: 'GET', path: '/local/devices/upload/files', headers: serviceHeaders(hub) });
      expect(res.status).toBe(200);
      const [file] = res.json() as Array<{ blobName: string; size: number; contentBase64: string; notification?: { isSuccess: boolean; statusCode: number } }>;
      expect(file?.blobName).toBe('upload/logs/today.bin');
      expect(file?.size).toBe(content.length);
      expect(Buffer.from(file?.contentBase64 ?? '', 'base64').equals(content)).toBe(true);
      expect(file?.notification).toMatchObject({ isSuccess: true, statusCode: 201 });
    } finally {
      https.globalAgent.options.ca = previousCa;
    }
  });

  it('authenticates an X.509 device by its client certificate thumbprint', async () => {
    const certificate = hub.issueDeviceCertificate('x509-dev');
    hub.createDevice('x509-dev', { authentication: { type: 'x509-thumbprint', primaryThumbprint: certificate.thumbprint } });
    const client = await httpClient(`HostName=${hub.hostName};DeviceId=x509-dev;x509=true`, { cert: certificate.cert, key: certificate.key });
    await client.sendEvent(new Message('from x509'));
    expect(hub.telemetry({ deviceId: 'x509-dev' }).map((r) => r.body.toString())).toEqual(['from x509']);

    // A SHA-256 secondary thumbprint works next to a SHA-1 primary.
    const rotated = hub.issueDeviceCertificate('x509-dev');
    const withSecondary = await hubRequest(hub, { method: 'PUT', path: `/devices/x509-dev?${API}`, headers: serviceHeaders(hub, { 'If-Match': '*' }), body: JSON.stringify({ authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: certificate.thumbprint, secondaryThumbprint: rotated.thumbprint256 } } }) });
    expect(withSecondary.status).toBe(200);
    const viaSecondary = await hubRequest(hub, { method: 'POST', path: `/devices/x509-dev/messages/events?${API}`, body: 'rotated', cert: rotated.cert, key: rotated.key });
    expect(viaSecondary.status).toBe(204);

    // Another device's certificate on this path is refused.
    const stranger = hub.issueDeviceCertificate('stranger');
    const res = await hubRequest(hub, { method: 'POST', path: `/devices/x509-dev/messages/events?${API}`, body: 'x', cert: stranger.cert, key: stranger.key });
    expect(res.status).toBe(401);
  });
});

describe('HTTPS device API refusals (plain HTTPS)', () => {
  const events = (deviceId: string): string => `/devices/${deviceId}/messages/events?${API}`;

  it('refuses a token signed with the wrong key with IoT Hub 401 body', async () => {
    const res = await hubRequest(hub, { method: 'POST', path: events('neg-a'), headers: { Authorization: deviceToken('neg-a', { key: randomBytes(32).toString('base64') }) }, body: 'x' });
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ errorCode: 401003, Message: expect.stringMatching(/^ErrorCode:Unauthorized;/) });
    expect(hub.telemetry({ deviceId: 'neg-a' })).toHaveLength(0);
  });

  it('refuses an expired token', async () => {
    const res = await hubRequest(hub, { method: 'POST', path: events('neg-a'), headers: { Authorization: deviceToken('neg-a', { expiresInSeconds: -60 }) }, body: 'x' });
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ errorCode: 401003 });
  });

  it("refuses device A's token on device B's path and logs the refusal", async () => {
    const before = refusals.length;
    const res = await hubRequest(hub, { method: 'POST', path: events('neg-b'), headers: { Authorization: deviceToken('neg-a') }, body: 'x' });
    expect(res.status).toBe(401);
    expect(refusals.slice(before)).toContainEqual(expect.objectContaining({ deviceId: 'neg-b', why: expect.stringContaining('wrong-audience') }));
    expect(hub.telemetry({ deviceId: 'neg-b' })).toHaveLength(0);
  });

  it('refuses a service token on the device API', async () => {
    const res = await hubRequest(hub, { method: 'POST', path: events('neg-a'), headers: { Authorization: hub.serviceToken() }, body: 'x' });
    expect(res.status).toBe(401);
    expect(hub.telemetry({ deviceId: 'neg-a' })).toHaveLength(0);
  });

  it('refuses a request without credentials', async () => {
    const res = await hubRequest(hub, { method: 'GET', path: `/devices/neg-a/messages/devicebound?${API}` });
    expect(res.status).toBe(401);
  });

  it('requires api-version', async () => {
    const res = await hubRequest(hub, { method: 'POST', path: '/devices/neg-a/messages/events', headers: { Authorization: deviceToken('neg-a') }, body: 'x' });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ errorCode: 400004, Message: expect.stringContaining('api-version') });
  });

  it('answers 413 to a body over 256 KB sent chunked, and keeps serving', async () => {
    const chunks = Array.from({ length: 20 }, () => randomBytes(16 * 1024)); // 320 KB
    const res = await hubRequest(hub, { method: 'POST', path: events('neg-a'), headers: { Authorization: deviceToken('neg-a') }, chunks });
    expect(res.status).toBe(413);
    expect(res.json()).toMatchObject({ errorCode: 413002 });
    expect(hub.telemetry({ deviceId: 'neg-a' })).toHaveLength(0);

    const ok = await hubRequest(hub, { method: 'POST', path: events('neg-a'), headers: { Authorization: deviceToken('neg-a') }, body: 'still here' });
    expect(ok.status).toBe(204);
    expect(hub.telemetry({ deviceId: 'neg-a' }).map((r) => r.body.toString())).toEqual(['still here']);
  });

  it('stops buffering a 5 MB body: 413 (or a reset once it discarded 1 MB more), then serves others', async () => {
    const chunks = Array.from({ length: 320 }, () => randomBytes(16 * 1024));
    // The hub answers 413 at 256 KB and then discards; past 1 MB of discarded input it destroys
    // the socket, and a reset may overtake the 413 on the client's side. Either way nothing is kept.
    const outcome = await hubRequest(hub, { method: 'POST', path: events('neg-b'), headers: { Authorization: deviceToken('neg-b') }, chunks }).then(
      (res) => res.status,
      (err: NodeJS.ErrnoException) => err.code,
    );
    expect([413, 'ECONNRESET', 'EPIPE']).toContain(outcome);
    expect(hub.telemetry({ deviceId: 'neg-b' })).toHaveLength(0);
    const ok = await hubRequest(hub, { method: 'POST', path: events('neg-a'), headers: { Authorization: deviceToken('neg-a') }, body: 'after 5 MB' });
    expect(ok.status).toBe(204);
  });

  it('answers 413 to a declared Content-Length over 256 KB before reading it', async () => {
    const res = await hubRequest(hub, { method: 'POST', path: events('neg-b'), headers: { Authorization: deviceToken('neg-b'), 'Content-Length': String(300 * 1024) }, body: Buffer.alloc(300 * 1024) });
    expect(res.status).toBe(413);
    expect(hub.telemetry({ deviceId: 'neg-b' })).toHaveLength(0);
  });

  it('answers 400 to a malformed batch and accepts none of it', async () => {
    const res = await hubRequest(hub, {
      method: 'POST',
      path: events('neg-b'),
      headers: { Authorization: deviceToken('neg-b'), 'Content-Type': 'application/vnd.microsoft.iothub.json' },
      body: '[{"body": "aGk="}, {"body": 42}]',
    });
    expect(res.status).toBe(400);
    expect(res.json()).toMatchObject({ errorCode: 400004, Message: expect.stringContaining('[1].body') });
    const notJson = await hubRequest(hub, { method: 'POST', path: events('neg-b'), headers: { Authorization: deviceToken('neg-b'), 'Content-Type': 'application/vnd.microsoft.iothub.json' }, body: '[{"body": ' });
    expect(notJson.status).toBe(400);
    expect(hub.telemetry({ deviceId: 'neg-b' })).toHaveLength(0);
  });

  it('answers 412 (412002) when completing with a lock token that is not held', async () => {
    const res = await hubRequest(hub, { method: 'DELETE', path: `/devices/neg-a/messages/devicebound/not-a-lock?${API}`, headers: { Authorization: deviceToken('neg-a') } });
    expect(res.status).toBe(412);
    expect(res.json()).toMatchObject({ errorCode: 412002 });
  });

  it('answers unknown routes with a 404 JSON body and wrong methods with 405', async () => {
    const res = await hubRequest(hub, { method: 'GET', path: `/nothing/here?${API}` });
    expect(res.status).toBe(404);
    expect(res.json()).toMatchObject({ Message: expect.stringMatching(/^ErrorCode:NotFound;/) });
    const wrongMethod = await hubRequest(hub, { method: 'PUT', path: `/devices/neg-a/messages/events?${API}` });
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.allow).toBe('POST');
  });

  it('refuses a device token on the service API', async () => {
    const res = await hubRequest(hub, { method: 'GET', path: `/devices/neg-a?${API}`, headers: { Authorization: deviceToken('neg-a') } });
    expect(res.status).toBe(401);
    expect(res.json()).toMatchObject({ errorCode: 401003 });
  });
});
