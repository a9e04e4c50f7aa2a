// The service side's pure rules, without sockets: policy tokens and rights, what a service's C2D
// message means, feedback batching on a manual clock, and the competing-consumer queue.
import { describe, expect, it } from 'vitest';
import rhea from 'rhea';
import { ManualClock } from '@switchyard/time';
import type { C2DSettledEvent } from '../src/core/events.ts';
import { authenticatePolicyToken, BUILT_IN_POLICIES, loadPolicyKeys, POLICY_NAMES } from '../src/core/policies.ts';
import { createSasToken, generateKey } from '../src/core/sas.ts';
import { FeedbackBatcher, wantsFeedback } from '../src/amqp/feedback.ts';
import { c2dFromServiceMessage, parseServicePutToken } from '../src/amqp/service-mapping.ts';
import { serviceEndpointOf } from '../src/amqp/service-links.ts';
import { ServiceBoundQueue, type ServiceBoundConsumer, type ServiceBoundEntry } from '../src/amqp/service-queue.ts';
import { rightsFor } from '../src/https/service-rights.ts';

const HOST = 'unit.azure-devices.net';

describe('built-in shared access policies', () => {
  const keys = new Map(POLICY_NAMES.map((p) => [p, generateKey()]));
  const now = 1_800_000_000_000;
  const token = (policy: string, key = keys.get(policy as never) ?? generateKey(), sr = HOST, expiresInS = 600): string =>
    createSasToken(sr, key, Math.floor(now / 1000) + expiresInS, policy);

  it('grants each policy the rights IoT Hub gives it', () => {
    expect(BUILT_IN_POLICIES).toEqual({
      iothubowner: ['RegistryRead', 'RegistryWrite', 'ServiceConnect', 'DeviceConnect'],
      service: ['ServiceConnect'],
      device: ['DeviceConnect'],
      registryRead: ['RegistryRead'],
      registryReadWrite: ['RegistryRead', 'RegistryWrite'],
    });
    for (const policy of POLICY_NAMES) {
      expect(authenticatePolicyToken(token(policy), { keys, hosts: [HOST], now })).toEqual({ ok: true, policy, rights: BUILT_IN_POLICIES[policy], expiresAt: (Math.floor(now / 1000) + 600) * 1000 });
    }
  });

  it('refuses unknown policies, foreign keys, other hubs, expired tokens and device paths where the hub is meant', () => {
    const context = { keys, hosts: [HOST], now };
    expect(authenticatePolicyToken(token('owner'), context)).toMatchObject({ ok: false, message: expect.stringContaining("Unknown shared access policy 'owner'") as unknown as string });
    expect(authenticatePolicyToken(token('service', keys.get('iothubowner')), context)).toMatchObject({ ok: false, message: expect.stringContaining("key of 'service'") as unknown as string });
    expect(authenticatePolicyToken(token('service', undefined, 'other.azure-devices.net'), context)).toMatchObject({ ok: false });
    expect(authenticatePolicyToken(token('service', undefined, HOST, -1), context)).toMatchObject({ ok: false, message: expect.stringContaining('expired') as unknown as string });
    expect(authenticatePolicyToken(token('device', undefined, `${HOST}/devices/d1`), { ...context, path: '/devices/d1' })).toMatchObject({ ok: true, policy: 'device' });
    expect(authenticatePolicyToken(token('device', undefined, `${HOST}/devices/d2`), { ...context, path: '/devices/d1' })).toMatchObject({ ok: false });
  });

  it('generates a key per policy once and keeps the stored ones', () => {
    const stored = new Map<string, string>([['service', generateKey()]]);
    const store = { getPolicyKey: (p: string) => stored.get(p), setPolicyKey: (p: string, k: string) => void stored.set(p, k) };
    const first = loadPolicyKeys(store);
    expect([...first.keys()].sort()).toEqual([...POLICY_NAMES].sort());
    expect(first.get('service')).toBe(stored.get('service'));
    expect(loadPolicyKeys(store)).toEqual(first);
  });

  it('maps REST routes to the rights that admit them', () => {
    expect(rightsFor('device-list')).toEqual(['RegistryRead']);
    expect(rightsFor('device-put')).toEqual(['RegistryWrite']);
    expect(rightsFor('method-invoke')).toEqual(['ServiceConnect']);
    expect(rightsFor('twin-get')).toEqual(['RegistryRead', 'ServiceConnect']);
  });
});

describe('service messages', () => {
  it('reads a put-token for the hub as a service credential and leaves device audiences alone', () => {
    const props = (name: string): Record<string, unknown> => ({ operation: 'put-token', type: 'servicebus.windows.net:sastoken', name });
    expect(parseServicePutToken({ message_id: 'm1', application_properties: props(HOST), body: 'SharedAccessSignature sr=x&sig=y&se=1&skn=service' }))
      .toEqual({ ok: true, messageId: 'm1', audience: HOST, token: 'SharedAccessSignature sr=x&sig=y&se=1&skn=service' });
    expect(parseServicePutToken({ application_properties: props(encodeURIComponent(`${HOST}/devices/d1`)), body: 'SharedAccessSignature x' })).toBeUndefined();
    expect(parseServicePutToken({ application_properties: { ...props(HOST), type: 'jwt' }, body: 'SharedAccessSignature x' })).toMatchObject({ ok: false, status: 400 });
    expect(parseServicePutToken({ application_properties: props(HOST), body: 'Bearer x' })).toMatchObject({ ok: false, status: 400 });
  });

  it('turns a devicebound message into the core C2D call, TTL from absolute-expiry-time', () => {
    const now = 1_800_000_000_000;
    const parsed = c2dFromServiceMessage({
      to: '/devices/dev%3A1/messages/devicebound',
      message_id: 'mid',
      correlation_id: 'cid',
      content_type: 'application/json',
      content_encoding: 'utf-8',
      absolute_expiry_time: new Date(now + 90_000),
      application_properties: { 'iothub-ack': 'full', color: 'blue', n: 3 },
      body: rhea.message.data_section(Buffer.from('{}')),
    }, now);
    expect(parsed).toEqual({
      ok: true,
      deviceId: 'dev:1',
      input: { body: Buffer.from('{}'), messageId: 'mid', correlationId: 'cid', contentType: 'application/json', contentEncoding: 'utf-8', ttlSeconds: 90, ack: 'full', properties: { color: 'blue', n: '3' } },
    });
    expect(c2dFromServiceMessage({ to: '/devices/d1/messages/events' }, now)).toMatchObject({ ok: false });
    expect(c2dFromServiceMessage({ to: '/devices/d1/messages/devicebound', application_properties: { 'iothub-ack': 'sometimes' } }, now)).toMatchObject({ ok: false });
  });

  it('names the service endpoints case-insensitively, as the SDK spells them', () => {
    expect(serviceEndpointOf('/messages/devicebound')).toBe('c2d-send');
    expect(serviceEndpointOf('/messages/serviceBound/feedback')).toBe('feedback');
    expect(serviceEndpointOf('/messages/serviceBound/filenotifications')).toBe('file-notifications');
    expect(serviceEndpointOf('/devices/d1/messages/devicebound')).toBeUndefined();
  });
});

function settled(messageId: string, ack: C2DSettledEvent['ack'], outcome: C2DSettledEvent['outcome'], at = 0): C2DSettledEvent {
  return { deviceId: 'd1', deviceGenerationId: 'g1', messageId, ack, outcome, at };
}

function bodyOf(entry: ServiceBoundEntry): unknown {
  const body = entry.message.body as { content: Buffer };
  return JSON.parse(body.content.toString('utf8'));
}

describe('delivery feedback', () => {
  it('reports per ack: positive completions, negative failures, full both, none never', () => {
    const outcomes = ['completed', 'rejected', 'expired', 'deliveryCountExceeded', 'purged'] as const;
    const table = Object.fromEntries((['none', 'positive', 'negative', 'full', undefined] as const).map((ack) => [String(ack), outcomes.filter((o) => wantsFeedback(ack, o))]));
    expect(table).toEqual({
      none: [],
      positive: ['completed'],
      negative: ['rejected', 'expired', 'deliveryCountExceeded', 'purged'],
      full: [...outcomes],
      undefined: [],
    });
  });

  it('batches the records of one window into one message, on the injected clock', async () => {
    const clock = new ManualClock(1_000_000);
    const queue = new ServiceBoundQueue('feedback', clock);
    const batcher = new FeedbackBatcher(queue, clock, HOST, { batchWindowMs: 500 });
    batcher.onSettled(settled('a', 'positive', 'completed', clock.now()));
    batcher.onSettled(settled('b', 'positive', 'rejected', clock.now()));
    batcher.onSettled(settled('c', 'full', 'expired', clock.now()));
    await clock.advanceAsync(499);
    expect(queue.size).toBe(0);
    await clock.advanceAsync(1);
    expect(queue.size).toBe(1);
    const delivered: ServiceBoundEntry[] = [];
    queue.attach({ canDeliver: () => true, deliver: (e) => delivered.push(e) });
    expect(delivered.map(bodyOf)).toEqual([[
      { originalMessageId: 'a', description: 'Success', statusCode: 'Success', deviceId: 'd1', deviceGenerationId: 'g1', enqueuedTimeUtc: new Date(1_000_000).toISOString() },
      { originalMessageId: 'c', description: 'Expired', statusCode: 'Expired', deviceId: 'd1', deviceGenerationId: 'g1', enqueuedTimeUtc: new Date(1_000_000).toISOString() },
    ]]);
    expect(delivered[0]?.message.content_type).toBe('application/vnd.microsoft.iothub.feedback.json');
    expect(clock.pending()).toBe(0);
  });

  it('sends a full batch at once and starts the next window with the next record', async () => {
    const clock = new ManualClock(0);
    const queue = new ServiceBoundQueue('feedback', clock);
    const batcher = new FeedbackBatcher(queue, clock, HOST, { batchWindowMs: 1000, maxRecordsPerMessage: 2 });
    for (const id of ['a', 'b', 'c']) batcher.onSettled(settled(id, 'full', 'completed'));
    expect(queue.size).toBe(1);
    await clock.advanceAsync(1000);
    expect(queue.size).toBe(2);
    batcher.close();
  });
});

describe('service-bound queue', () => {
  function consumer(capacity: number): ServiceBoundConsumer & { got: ServiceBoundEntry[] } {
    const got: ServiceBoundEntry[] = [];
    return { got, canDeliver: () => got.length < capacity, deliver: (e) => got.push(e) };
  }

  it('hands each message to one receiver, redelivers abandoned ones, and frees a detached receiver\'s locks', () => {
    const clock = new ManualClock(0);
    const queue = new ServiceBoundQueue('q', clock, { maxDeliveryCount: 3 });
    const a = consumer(1);
    const b = consumer(1);
    queue.attach(a);
    queue.attach(b);
    queue.enqueue({ body: 'm1' });
    queue.enqueue({ body: 'm2' });
    expect([a.got.map((e) => e.message.body), b.got.map((e) => e.message.body)].flat().sort()).toEqual(['m1', 'm2']);
    const first = a.got[0]!;
    queue.complete(first);
    expect(queue.size).toBe(1);
    queue.detach(b);
    const c = consumer(5);
    queue.attach(c);
    expect(c.got.map((e) => e.message.body)).toEqual(['m2']);
    queue.abandon(c.got[0]!);
    expect(c.got.map((e) => e.message.body)).toEqual(['m2', 'm2']);
    // Delivered three times (to b, then twice to c: the limit): abandoning again drops it.
    queue.abandon(c.got[1]!);
    expect(queue.size).toBe(0);
  });

  it('drops messages nobody took within their retention', () => {
    const clock = new ManualClock(0);
    const queue = new ServiceBoundQueue('q', clock, { ttlMs: 1000 });
    queue.enqueue({ body: 'old' });
    clock.set(1000);
    const late = consumer(5);
    queue.attach(late);
    expect(late.got).toEqual([]);
    expect(queue.size).toBe(0);
  });
});
