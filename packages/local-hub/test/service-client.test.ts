// Microsoft's azure-iothub service Client, unmodified, against the local hub over AMQP and AMQP
// over WebSockets with TLS verification on: C2D to a real device client, delivery feedback,
// file upload notifications, policy rights, and direct methods over HTTPS.
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { systemClock } from '@switchyard/time';
import iothub from 'azure-iothub';
import type { Client as ServiceClient } from 'azure-iothub';
import azureIotCommon from 'azure-iot-common';
import type { Client as DeviceClient, Message as DeviceMessage } from 'azure-iot-device';
import { createMemoryLogger, createSasToken, startLocalHub, type LocalHub } from '../src/index.ts';
import { azureClient } from './support/azure-clients.ts';
import { SERVICE_TRANSPORTS, serviceClient, serviceClientFrom, within } from './support/service-client.ts';

// azure-iothub exports no Message; Microsoft's service samples use azure-iot-common's.
const ServiceMessage = azureIotCommon.Message;

interface FeedbackRecordBody {
  originalMessageId: string;
  description: string;
  deviceId: string;
  deviceGenerationId: string;
  enqueuedTimeUtc: string;
  statusCode: string;
}

interface ReceivedServiceMessage {
  data: Buffer;
  contentType?: string;
  contentEncoding?: string;
}

let skewMs = 0;
let hub: LocalHub;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  // The hub's clock runs ahead on demand, so TTL expiry is driven rather than waited for; SDK
  // tokens (valid an hour) stay valid across the few minutes it moves.
  hub = await startLocalHub({
    inMemory: true,
    logger: createMemoryLogger(),
    clock: { now: () => Date.now() + skewMs, setTimeout: systemClock.setTimeout, clearTimeout: systemClock.clearTimeout },
    // A short window keeps the tests quick; batching itself is unit-tested on a manual clock.
    service: { feedback: { batchWindowMs: 20 } },
  });
});

// Feedback and file notification queues are hub-wide with competing receivers, as in IoT Hub, so
// each test's clients go before the next test attaches its own.
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await within(close(), 10_000, 'close').catch(() => undefined);
});

afterAll(async () => {
  await hub.close();
});

async function device(deviceId: string, transport: 'amqp' | 'mqtt' = 'amqp'): Promise<DeviceClient> {
  const record = hub.getDevice(deviceId) ?? hub.createDevice(deviceId);
  if (record.authentication.type !== 'sas') throw new Error('not a SAS device');
  const client = await azureClient(hub, transport, deviceId, record.authentication.primaryKey);
  closers.push(() => client.close());
  await within(client.open(), 15_000, `${deviceId} open`);
  return client;
}

async function opened(transport: (typeof SERVICE_TRANSPORTS)[number], connectionString?: string): Promise<ServiceClient> {
  const client = serviceClient(hub, transport, connectionString);
  closers.push(() => client.close());
  await within(client.open(), 15_000, `service ${transport} open`);
  return client;
}

// The device SDK detaches its C2D link when the last 'message' listener goes, so each device keeps
// one listener and tests take messages from its inbox.
const inboxes = new WeakMap<DeviceClient, { queued: DeviceMessage[]; waiting: Array<(m: DeviceMessage) => void> }>();

function nextMessage(client: DeviceClient): Promise<DeviceMessage> {
  let inbox = inboxes.get(client);
  if (!inbox) {
    const created = { queued: [] as DeviceMessage[], waiting: [] as Array<(m: DeviceMessage) => void> };
    inboxes.set(client, created);
    client.on('message', (m: DeviceMessage) => {
      const waiter = created.waiting.shift();
      if (waiter) waiter(m);
      else created.queued.push(m);
    });
    inbox = created;
  }
  const ready = inbox.queued.shift();
  if (ready) return Promise.resolve(ready);
  const target = inbox;
  return new Promise((resolve) => target.waiting.push(resolve));
}

/** The next message a service receiver yields, completed so it leaves the hub's queue. */
async function nextServiceMessage(receiver: iothub.Client.ServiceReceiver): Promise<ReceivedServiceMessage> {
  const message = await new Promise<ReceivedServiceMessage>((resolve) => receiver.once('message', resolve));
  await within(receiver.complete(message as unknown as Parameters<typeof receiver.complete>[0]) as unknown as Promise<unknown>, 10_000, 'complete');
  return message;
}

function feedbackRecords(message: ReceivedServiceMessage): FeedbackRecordBody[] {
  return JSON.parse(Buffer.from(message.data).toString('utf8')) as FeedbackRecordBody[];
}

function errorName(error: unknown): string {
  return (error as { constructor?: { name?: string } })?.constructor?.name ?? String(error);
}

describe.each(SERVICE_TRANSPORTS)('azure-iothub Client over %s', (transport) => {
  it('opens, sends C2D with its properties to a device, reports positive feedback, and closes', async () => {
    const deviceId = `svc-c2d-${transport}`;
    const dev = await device(deviceId);
    const service = await opened(transport);
    const { result: feedback } = await within(service.getFeedbackReceiver(), 10_000, 'feedback receiver') as unknown as { result: iothub.Client.ServiceReceiver };

    const got = nextMessage(dev);
    const message = new ServiceMessage(JSON.stringify({ command: 'reboot' }));
    message.messageId = `msg-${transport}`;
    message.correlationId = `corr-${transport}`;
    message.ack = 'positive';
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    message.properties.add('priority', 'high');
    await within(service.send(deviceId, message), 10_000, 'send');

    const received = await within(got, 10_000, 'device receive');
    expect(Buffer.from(received.data as Buffer).toString()).toBe('{"command":"reboot"}');
    expect(received.messageId).toBe(`msg-${transport}`);
    expect(received.correlationId).toBe(`corr-${transport}`);
    expect(received.contentType).toBe('application/json');
    expect(received.contentEncoding).toBe('utf-8');
    expect(received.properties.getValue('priority')).toBe('high');
    expect(received.to).toBe(`/devices/${deviceId}/messages/devicebound`);

    const feedbackMessage = nextServiceMessage(feedback);
    await within(dev.complete(received), 10_000, 'device complete');
    const fb = await within(feedbackMessage, 10_000, 'feedback');
    expect(fb.contentType).toBe('application/vnd.microsoft.iothub.feedback.json');
    const records = feedbackRecords(fb);
    expect(records).toEqual([{
      originalMessageId: `msg-${transport}`,
      description: 'Success',
      statusCode: 'Success',
      deviceId,
      deviceGenerationId: hub.getDevice(deviceId)?.generationId,
      enqueuedTimeUtc: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown as string,
    }]);
    await within(service.close(), 10_000, 'service close');
  });

  it('reports negative feedback for rejection and expiry only, and full feedback for both', async () => {
    const deviceId = `svc-neg-${transport}`;
    const dev = await device(deviceId);
    const service = await opened(transport);
    const { result: feedback } = await within(service.getFeedbackReceiver(), 10_000, 'feedback receiver') as unknown as { result: iothub.Client.ServiceReceiver };
    const send = async (id: string, ack: string, ttlMs?: number): Promise<void> => {
      const m = new ServiceMessage(id);
      m.messageId = id;
      m.ack = ack;
      if (ttlMs !== undefined) m.expiryTimeUtc = Date.now() + skewMs + ttlMs;
      await within(service.send(deviceId, m), 10_000, `send ${id}`);
    };

    // Completed with ack=negative: no record. Then one rejected: the batch holds only that one.
    let got = nextMessage(dev);
    await send(`${transport}-neg-ok`, 'negative');
    await within(dev.complete(await within(got, 10_000, 'receive')), 10_000, 'complete');
    got = nextMessage(dev);
    await send(`${transport}-neg-rejected`, 'negative');
    let fb = nextServiceMessage(feedback);
    await within(dev.reject(await within(got, 10_000, 'receive')), 10_000, 'reject');
    expect(feedbackRecords(await within(fb, 10_000, 'feedback'))).toMatchObject([{ originalMessageId: `${transport}-neg-rejected`, statusCode: 'Rejected', deviceId }]);

    // Expiry: with no device attached the message waits, then the hub's clock passes its TTL.
    await within(dev.close(), 10_000, 'device close');
    await send(`${transport}-neg-expired`, 'negative', 60_000);
    fb = nextServiceMessage(feedback);
    skewMs += 61_000;
    hub.stats();
    expect(feedbackRecords(await within(fb, 10_000, 'feedback'))).toMatchObject([{ originalMessageId: `${transport}-neg-expired`, statusCode: 'Expired' }]);

    // ack=full reports a completion and a rejection alike.
    const again = await device(deviceId);
    got = nextMessage(again);
    await send(`${transport}-full-ok`, 'full');
    fb = nextServiceMessage(feedback);
    await within(again.complete(await within(got, 10_000, 'receive')), 10_000, 'complete');
    expect(feedbackRecords(await within(fb, 10_000, 'feedback'))).toMatchObject([{ originalMessageId: `${transport}-full-ok`, statusCode: 'Success' }]);
    got = nextMessage(again);
    await send(`${transport}-full-rejected`, 'full');
    fb = nextServiceMessage(feedback);
    await within(again.reject(await within(got, 10_000, 'receive')), 10_000, 'reject');
    expect(feedbackRecords(await within(fb, 10_000, 'feedback'))).toMatchObject([{ originalMessageId: `${transport}-full-rejected`, statusCode: 'Rejected' }]);
  });

  it("maps IoT Hub's C2D errors to the SDK's: unknown device, full queue, too large", async () => {
    const service = await opened(transport);
    const unknown = await service.send('no-such-device', new ServiceMessage('x')).then(() => undefined, (e: unknown) => e);
    expect(errorName(unknown)).toBe('DeviceNotFoundError');

    const deviceId = `svc-full-${transport}`;
    hub.createDevice(deviceId);
    for (let i = 0; i < 50; i++) await within(service.send(deviceId, new ServiceMessage(`m${i}`)), 10_000, `send ${i}`);
    const full = await service.send(deviceId, new ServiceMessage('one too many')).then(() => undefined, (e: unknown) => e);
    expect(errorName(full)).toBe('DeviceMaximumQueueDepthExceededError');
    expect(String((full as Error).message) + JSON.stringify((full as { amqpError?: unknown }).amqpError)).toContain('403004');

    const big = await service.send(`svc-c2d-${transport}`, new ServiceMessage(randomBytes(65 * 1024))).then(() => undefined, (e: unknown) => e);
    expect(errorName(big)).toBe('MessageTooLargeError');
  });

  it('delivers a file upload notification after a device uploads a file', async () => {
    const deviceId = `svc-upload-${transport}`;
    const record = hub.createDevice(deviceId);
    if (record.authentication.type !== 'sas') throw new Error('not a SAS device');
    const service = await opened(transport);
    const { result: notifications } = await within(service.getFileNotificationReceiver(), 10_000, 'file notification receiver') as unknown as { result: iothub.Client.ServiceReceiver };
    const uploader = await azureClient(hub, 'https', deviceId, record.authentication.primaryKey);
    closers.push(() => uploader.close());
    const notified = nextServiceMessage(notifications);
    // @azure/storage-blob ignores the client's `ca` and uses https.globalAgent; trust the hub CA
    // there (verification stays on) and restore it afterwards.
    const previousCa = https.globalAgent.options.ca;
    https.globalAgent.options.ca = hub.ca;
    const content = randomBytes(4096);
    try {
      await within(uploader.uploadToBlob('report.bin', Readable.from([content]), content.length), 15_000, 'upload');
    } finally {
      https.globalAgent.options.ca = previousCa;
    }
    const body = JSON.parse(Buffer.from((await within(notified, 10_000, 'notification')).data).toString('utf8')) as Record<string, unknown>;
    expect(body).toMatchObject({ deviceId, blobName: `${deviceId}/report.bin`, blobSizeInBytes: content.length });
    expect(String(body.blobUri)).toMatch(new RegExp(`^https://.+/${deviceId}/report\\.bin$`));
    expect(Number.isNaN(Date.parse(String(body.lastUpdatedTime)))).toBe(false);
    expect(Number.isNaN(Date.parse(String(body.enqueuedTimeUtc)))).toBe(false);
  });

  it('refuses the service links to a policy without ServiceConnect, and a wrong key at open', async () => {
    const readOnly = await opened(transport, hub.policyConnectionString('registryRead'));
    const refused = await readOnly.send(`svc-c2d-${transport}`, new ServiceMessage('x')).then(() => undefined, (e: unknown) => e);
    expect(errorName(refused)).toBe('UnauthorizedError');
    // rhea reports the attach before the detach that refuses it, so the SDK hands out the
    // receiver and only then hears the refusal (as the receiver's error); the hub records why.
    const refusal = new Promise<{ what: string; why: string }>((resolve) => {
      const listener = (event: { what: string; why: string }): void => {
        if (!event.what.includes('feedback')) return;
        hub.off('refused', listener);
        resolve(event);
      };
      hub.on('refused', listener);
    });
    await within(readOnly.getFeedbackReceiver(), 10_000, 'feedback receiver');
    expect(await within(refusal, 10_000, 'feedback refusal')).toMatchObject({ what: 'attach /messages/serviceBound/feedback', why: expect.stringContaining("'registryRead' does not grant ServiceConnect") as unknown as string });

    // The `service` policy (ServiceConnect only) may send.
    if (!hub.getDevice('svc-policy')) hub.createDevice('svc-policy');
    const serviceOnly = await opened(transport, hub.policyConnectionString('service'));
    await within(serviceOnly.send('svc-policy', new ServiceMessage('allowed')), 10_000, 'send with service policy');

    const wrongKey = serviceClient(hub, transport, hub.policyConnectionString('service').replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${randomBytes(32).toString('base64')}`));
    closers.push(() => wrongKey.close());
    const openError = await wrongKey.open().then(() => undefined, (e: unknown) => e);
    // The SDK wraps the CBS refusal (its own UnauthorizedError) in a plain 'Could not connect' Error.
    expect(String((openError as Error).message)).toContain('Could not connect');
    expect(errorName((openError as { amqpError?: unknown }).amqpError)).toBe('UnauthorizedError');
  });

  it('carries contentType and contentEncoding to an MQTT device too', async () => {
    const deviceId = `svc-ct-mqtt-${transport}`;
    const dev = await device(deviceId, 'mqtt');
    const service = await opened(transport);
    const got = nextMessage(dev);
    const message = new ServiceMessage('{"on":true}');
    message.contentType = 'application/json';
    message.contentEncoding = 'utf-8';
    await within(service.send(deviceId, message), 10_000, 'send');
    const received = await within(got, 10_000, 'device receive');
    expect([received.contentType, received.contentEncoding, Buffer.from(received.data as Buffer).toString()]).toEqual(['application/json', 'utf-8', '{"on":true}']);
  });

  it('invokes a direct method on a connected device over HTTPS', async () => {
    const deviceId = `svc-method-${transport}`;
    const dev = await device(deviceId, 'mqtt');
    dev.onDeviceMethod('echo', (request, response) => {
      void response.send(200, { echoed: request.payload as unknown });
    });
    const service = await opened(transport);
    const result = await within(service.invokeDeviceMethod(deviceId, { methodName: 'echo', payload: { n: 7 }, responseTimeoutInSeconds: 10 }), 15_000, 'invoke') as unknown as { result: { status: number; payload: unknown } };
    expect(result.result).toEqual({ status: 200, payload: { echoed: { n: 7 } } });
  });
});

describe("azure-iothub Client's other factories", () => {
  it('opens from a shared access signature of a policy, as from its connection string', async () => {
    const key = /SharedAccessKey=([^;]+)/.exec(hub.policyConnectionString('service'))![1]!;
    const sas = createSasToken(hub.hostName, key, Math.floor((Date.now() + skewMs) / 1000) + 3600, 'service');
    const client = serviceClientFrom(hub, 'amqp', (Transport) => iothub.Client.fromSharedAccessSignature(sas, Transport));
    closers.push(() => client.close());
    await within(client.open(), 10_000, 'open');
    hub.createDevice('svc-sas');
    await within(client.send('svc-sas', new ServiceMessage('by sas')), 10_000, 'send');
    expect(hub.stats().devices['svc-sas']?.queuedC2D).toBe(1);
  });

  it('refuses an Azure AD token credential at put-token, and says why', async () => {
    const credential = { getToken: () => Promise.resolve({ token: 'not-a-real-jwt', expiresOnTimestamp: Date.now() + 3_600_000 }) };
    const client = serviceClientFrom(hub, 'amqp', (Transport) => iothub.Client.fromTokenCredential(hub.hostName, credential, Transport));
    closers.push(() => client.close());
    const refusal = new Promise<string>((resolve) => {
      const listener = (event: { what: string; why: string }): void => {
        if (event.what !== 'cbs put-token') return;
        hub.off('refused', listener);
        resolve(event.why);
      };
      hub.on('refused', listener);
    });
    const error = await client.open().then(() => undefined, (e: unknown) => e);
    expect(error).toBeInstanceOf(Error);
    expect(await within(refusal, 10_000, 'refusal')).toContain('not a SharedAccessSignature');
  });
});
