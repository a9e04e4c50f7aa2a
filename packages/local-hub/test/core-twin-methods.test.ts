import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHubCore, createMemoryLogger, HubError, ManualClock, openHubStore, type LocalHubCore } from '../src/internal.ts';

let core: LocalHubCore;
let logger: ReturnType<typeof createMemoryLogger>;
// Method timeouts run on this clock: the tests move it instead of waiting.
let clock: ManualClock;

beforeEach(() => {
  logger = createMemoryLogger();
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  core = createHubCore({ hostName: 'unit-hub.azure-devices.net', store: openHubStore({ inMemory: true }), logger, clock });
  core.createDevice('d');
});

afterEach(() => core.close());

async function rejection(promise: Promise<unknown>): Promise<HubError> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof HubError) return error;
    throw error;
  }
  throw new Error('expected a rejection');
}

describe('twins', () => {
  it('versions reported patches and merges them, null deleting keys', () => {
    expect(core.getTwin('d')).toEqual({ desired: { $version: 1 }, reported: { $version: 1 } });
    expect(core.patchReported('d', { fw: '1.0', net: { ssid: 'a', rssi: -40 } })).toBe(2);
    expect(core.patchReported('d', { fw: null, net: { rssi: -50 } })).toBe(3);
    expect(core.getTwin('d').reported).toEqual({ $version: 3, net: { ssid: 'a', rssi: -50 } });
    expect(core.counters('d')).toMatchObject({ twinReportedUpdates: 2, twinReads: 2 });
  });

  it('refuses $-keys, non-objects and sections over 32 KB without changing the twin', () => {
    expect(() => core.patchReported('d', { $metadata: {} })).toThrow(HubError);
    expect(() => core.patchReported('d', [] as unknown as Record<string, unknown>)).toThrow(HubError);
    const big = { blob: 'x'.repeat(32 * 1024) };
    expect(() => core.patchReported('d', big)).toThrow(expect.objectContaining({ kind: 'MessageTooLarge' }));
    expect(core.readTwin('d').reported).toEqual({ $version: 1 });
  });

  it('notifies desired receivers of live sessions with the patch and the new $version; etag guards updates', () => {
    const seen: unknown[] = [];
    const session = core.openSession('d', 'mqtt', 'c1');
    session.setDesiredReceiver({ desiredChanged: (patch) => seen.push(patch) });
    const before = core.readTwin('d');
    const after = core.updateDesired('d', { interval: 5, mode: { eco: true } }, before.etag);
    expect(after.desired).toEqual({ $version: 2, interval: 5, mode: { eco: true } });
    expect(after.version).toBe(before.version + 1);
    expect(after.etag).not.toBe(before.etag);
    expect(seen).toEqual([{ interval: 5, mode: { eco: true }, $version: 2 }]);
    expect(() => core.updateDesired('d', { interval: 6 }, before.etag)).toThrow(expect.objectContaining({ kind: 'PreconditionFailed' }));
    session.close();
    core.updateDesired('d', { interval: 7 }, '*');
    expect(seen).toHaveLength(1);
  });
});

describe('direct methods', () => {
  it('fails at once with 404103 when no session has a method receiver', async () => {
    const error = await rejection(core.invokeMethod('d', { methodName: 'reboot' }));
    expect(error.errorCode).toBe(404103);
    expect((await rejection(core.invokeMethod('ghost', { methodName: 'reboot' }))).errorCode).toBe(404001);
  });

  it('resolves with the device answer', async () => {
    const session = core.openSession('d', 'amqp', 'c1');
    session.setMethodReceiver({
      invoke: (request) => {
        queueMicrotask(() => core.methodResponse('d', request.requestId, { status: 200, payload: { echo: request.payload, name: request.methodName } }));
      },
    });
    await expect(core.invokeMethod('d', { methodName: 'echo', payload: { n: 1 } })).resolves.toEqual({ status: 200, payload: { echo: { n: 1 }, name: 'echo' } });
    expect(core.counters('d').methodCalls).toBe(1);
  });

  it('refuses a device answer over 128 KB, as IoT Hub does, and passes one at the limit', async () => {
    const session = core.openSession('d', 'mqtt', 'c1');
    let answer: unknown;
    session.setMethodReceiver({ invoke: (request) => queueMicrotask(() => core.methodResponse('d', request.requestId, { status: 200, payload: answer })) });
    // A JSON string of n characters is n + 2 bytes on the wire.
    answer = 'x'.repeat(128 * 1024 - 2);
    await expect(core.invokeMethod('d', { methodName: 'dump' })).resolves.toMatchObject({ status: 200 });
    answer = 'x'.repeat(133 * 1024);
    const error = await rejection(core.invokeMethod('d', { methodName: 'dump' }));
    expect(error.kind).toBe('MessageTooLarge');
    expect(error.message).toContain('over IoT Hub\'s limit of 131072');
  });

  it('times out with 504101 and drops the late answer', async () => {
    let requestId = '';
    core.openSession('d', 'mqtt', 'c1').setMethodReceiver({ invoke: (r) => { requestId = r.requestId; } });
    let settled = false;
    const call = core.invokeMethod('d', { methodName: 'slow', responseTimeoutInSeconds: 5 });
    void call.catch(() => undefined).finally(() => { settled = true; });
    await clock.advanceAsync(4_999);
    expect(settled).toBe(false);
    await clock.advanceAsync(1);
    const error = await rejection(call);
    expect(error.errorCode).toBe(504101);
    expect(() => core.methodResponse('d', requestId, { status: 200, payload: null })).not.toThrow();
  });

  it('waits up to connectTimeoutInSeconds for the device to subscribe', async () => {
    const pending = core.invokeMethod('d', { methodName: 'late', connectTimeoutInSeconds: 5 });
    const session = core.openSession('d', 'mqtt', 'c1');
    session.setMethodReceiver({ invoke: (r) => core.methodResponse('d', r.requestId, { status: 201, payload: 'ok' }) });
    await expect(pending).resolves.toEqual({ status: 201, payload: 'ok' });
    session.close();
    const unanswered = core.invokeMethod('d', { methodName: 'late', connectTimeoutInSeconds: 5 });
    clock.advance(5_000);
    expect((await rejection(unanswered)).errorCode).toBe(404103);
  });

  it('rejects pending calls when the core closes', async () => {
    core.openSession('d', 'mqtt', 'c1').setMethodReceiver({ invoke: () => undefined });
    const pending = core.invokeMethod('d', { methodName: 'never' });
    core.close();
    expect((await rejection(pending)).kind).toBe('DeviceNotOnline');
  });
});

describe('sessions', () => {
  it('a new MQTT session kicks the older one; AMQP identities coexist', () => {
    const reasons: string[] = [];
    const first = core.openSession('d', 'mqtt', 'c1');
    first.onKicked((reason) => reasons.push(reason));
    core.openSession('d', 'mqtt-ws', 'c2');
    expect(reasons).toHaveLength(1);
    core.createDevice('e');
    core.openSession('d', 'amqp', 'c3');
    core.openSession('e', 'amqp', 'c3');
    const identities = core.stats().connectedIdentities.map((i) => `${i.deviceId}/${i.protocol}/${i.connectionId}`).sort();
    expect(identities).toEqual(['d/amqp/c3', 'd/mqtt-ws/c2', 'e/amqp/c3']);
  });

  it('a new AMQP connection for a device detaches it from the older one, leaving that connection\'s other identities', () => {
    core.createDevice('e');
    const reasons: string[] = [];
    core.openSession('d', 'amqp', 'shared').onKicked((reason) => reasons.push(reason));
    core.openSession('e', 'amqp', 'shared');
    core.openSession('d', 'amqp-ws', 'newer');
    expect(reasons).toEqual(['a newer connection for this device was opened']);
    const identities = core.stats().connectedIdentities.map((i) => `${i.deviceId}/${i.protocol}/${i.connectionId}`).sort();
    expect(identities).toEqual(['d/amqp-ws/newer', 'e/amqp/shared']);
  });

  it('removing or disabling a device kicks it; a closed connection drops its sessions', () => {
    const reasons: string[] = [];
    core.openSession('d', 'amqp', 'c1').onKicked((r) => reasons.push(r));
    core.putDevice('d', { status: 'disabled' }, '*');
    expect(reasons).toEqual(['device disabled']);
    core.createDevice('e');
    core.connectionOpened('amqp', 'c2');
    core.openSession('e', 'amqp', 'c2');
    expect(core.stats().connections.amqp).toBe(1);
    core.connectionClosed('amqp', 'c2');
    expect(core.stats()).toMatchObject({ connections: { amqp: 0 }, connectedIdentities: [] });
  });

  it('refuses oversized telemetry with 413002 and records accepted telemetry in order', () => {
    expect(() => core.acceptTelemetry('d', 'https', { body: Buffer.alloc(256 * 1024 + 1), properties: {}, systemProperties: {} })).toThrow(expect.objectContaining({ errorCode: 413002 }));
    expect(logger.entries.some((e) => e.message === 'refused' && e.fields['what'] === 'telemetry')).toBe(true);
    const seen: number[] = [];
    const stop = core.onTelemetry((r) => seen.push(r.sequenceNumber));
    const a = core.acceptTelemetry('d', 'mqtt', { body: Buffer.from('a'), properties: { k: 'v' }, systemProperties: { messageId: 'm1' } });
    const b = core.acceptTelemetry('d', 'amqp', { body: Buffer.from('b'), properties: {}, systemProperties: {} });
    stop();
    core.acceptTelemetry('d', 'amqp', { body: Buffer.from('c'), properties: {}, systemProperties: {} });
    expect(b.sequenceNumber).toBe(a.sequenceNumber + 1);
    expect(seen).toEqual([a.sequenceNumber, b.sequenceNumber]);
    expect(core.telemetry({ afterSequence: a.sequenceNumber }).map((r) => r.body.toString())).toEqual(['b', 'c']);
    expect(core.counters('d').telemetryReceived).toBe(3);
  });

  it('keeps a bounded telemetry ring', () => {
    const small = createHubCore({ hostName: 'h.azure-devices.net', store: openHubStore({ inMemory: true }), logger, telemetryCapacity: 10 });
    small.createDevice('d');
    for (let i = 0; i < 2000; i++) small.acceptTelemetry('d', 'mqtt', { body: Buffer.from(String(i)), properties: {}, systemProperties: {} });
    const kept = small.telemetry();
    expect(kept.map((r) => r.body.toString())).toEqual(Array.from({ length: 10 }, (_, i) => String(1990 + i)));
    small.close();
  });
});
