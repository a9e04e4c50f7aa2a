// The outbox over HTTPS against the local hub: queued messages go as IoT Hub batch requests, far
// fewer than one per message, each within the 256 KiB cap, in order, and every message keeps its
// own message id (which the SDK's own sendEventBatch would drop). Requests are counted at the hub's
// HTTPS server through Node's diagnostics channel, independently of the client.
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { connect, type DeviceClient } from '../src/index.ts';

let hub: LocalHub;
const closers: Array<() => Promise<unknown>> = [];
/** Telemetry POSTs the hub's HTTPS server received, by device path: their body sizes. */
const posts = new Map<string, number[]>();
const onRequest = (message: unknown): void => {
  const { request } = message as { request: IncomingMessage };
  const match = /^\/devices\/([^/]+)\/messages\/events/.exec(request.url ?? '');
  if (request.method !== 'POST' || match === null) return;
  const id = decodeURIComponent(match[1]!);
  posts.set(id, [...(posts.get(id) ?? []), Number(request.headers['content-length'] ?? -1)]);
};

beforeAll(async () => {
  subscribe('http.server.request.start', onRequest);
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  unsubscribe('http.server.request.start', onRequest);
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await hub?.close();
});

async function device(deviceId: string, outbox: boolean): Promise<DeviceClient> {
  hub.createDevice(deviceId);
  const { client } = await connect({
    connectionString: hub.deviceConnectionString(deviceId, { protocol: 'https' }),
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    profile: { features: ['telemetry'] },
    forceProtocol: 'https',
    operationTimeoutMs: 20_000,
    ...(outbox ? { outbox: {} } : {}),
  });
  client.on('error', () => undefined);
  closers.push(() => client.close());
  return client as DeviceClient;
}

function received(deviceId: string): Array<{ id: string; body: string; properties: Record<string, string>; correlationId: unknown }> {
  return hub
    .telemetry({ deviceId })
    .sort((a, b) => a.sequenceNumber - b.sequenceNumber)
    .map((r) => ({ id: String(r.systemProperties.messageId), body: r.body.toString(), properties: r.properties, correlationId: r.systemProperties.correlationId }));
}

describe('outbox over https', () => {
  it('sends 100 queued messages in a few batch requests, in order, each with its own message id and properties', async () => {
    const deviceId = 'outbox-https-batch';
    const client = await device(deviceId, true);
    const messages = Array.from({ length: 100 }, (_, i) => ({ body: `b-${i}`, messageId: `id-${i}`, properties: { n: String(i) }, ...(i === 7 ? { correlationId: 'c-7' } : {}) }));
    await client.sendEventBatch(messages);
    const requests = posts.get(deviceId) ?? [];
    // The window (64 messages on the wire) makes two; one per message would be 100.
    expect(requests.length).toBeLessThanOrEqual(4);
    const got = received(deviceId);
    expect(got.map((r) => r.body)).toEqual(messages.map((m) => m.body));
    expect(got.map((r) => r.id)).toEqual(messages.map((m) => m.messageId));
    expect(got.map((r) => r.properties.n)).toEqual(messages.map((m) => m.properties.n));
    expect(got[7]!.correlationId).toBe('c-7');
  });

  it('gathers sendEvent calls of one turn into batches too; stable ids are generated and kept', async () => {
    const deviceId = 'outbox-https-loop';
    const client = await device(deviceId, true);
    await Promise.all(Array.from({ length: 100 }, (_, i) => client.sendEvent(`s-${i}`)));
    expect((posts.get(deviceId) ?? []).length).toBeLessThanOrEqual(4);
    const got = received(deviceId);
    expect(got.map((r) => r.body)).toEqual(Array.from({ length: 100 }, (_, i) => `s-${i}`));
    expect(new Set(got.map((r) => r.id)).size).toBe(100);
    // The outbox's ids (outbox/message-ids.ts): a random prefix of its own and a counter.
    expect(got.every((r) => /^[A-Za-z0-9_-]{13,17}$/.test(r.id))).toBe(true);
  });

  it('keeps every request within IoT Hub\'s 256 KiB batch cap', async () => {
    const deviceId = 'outbox-https-cap';
    const client = await device(deviceId, true);
    // 60 000 bytes are 80 000 in base64: three to a request.
    const big = Array.from({ length: 10 }, (_, i) => Buffer.alloc(60_000, 97 + i));
    await client.sendEventBatch(big);
    const requests = posts.get(deviceId) ?? [];
    expect(requests.length).toBeGreaterThanOrEqual(4);
    expect(requests.length).toBeLessThan(10);
    for (const bytes of requests) expect(bytes).toBeLessThanOrEqual(256 * 1024);
    expect(received(deviceId).map((r) => r.body)).toEqual(big.map((b) => b.toString()));
  });

  it('without an outbox, sendEvent calls are one request each (what the batches save)', async () => {
    const deviceId = 'outbox-https-plain';
    const client = await device(deviceId, false);
    await Promise.all(Array.from({ length: 20 }, (_, i) => client.sendEvent(`p-${i}`)));
    expect((posts.get(deviceId) ?? []).length).toBe(20);
  });
});
