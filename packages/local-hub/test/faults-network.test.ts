// Network faults through the service REST API (POST /local/devices/{id}/faults): reset, black
// hole, delay, refusing new connections and 429 on HTTPS, each seen by the unmodified Azure device
// SDK with TLS verified. The hub runs on a manual clock, so a window ends when the test says so.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, HubError, ManualClock, startLocalHub, type FaultEvent, type LocalHub } from '../src/internal.ts';
import { faultClient, faultMessage, nextConnect, nextFault, once, sendEvent, Message, type FaultClient } from './support/faults.ts';
import { hubRequest, type HubResponse } from './support/https-helpers.ts';

let hub: LocalHub;
// The hub's clock: fault windows and method timeouts run on it, so the tests move it instead of waiting.
const clock = new ManualClock(Date.now());
const clients: FaultClient[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, clock, logger: createMemoryLogger() });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await hub?.close();
});

function service(method: string, path: string, body?: unknown): Promise<HubResponse> {
  return hubRequest(hub, {
    method,
    path,
    headers: { Authorization: hub.serviceToken(), 'Content-Type': 'application/json' },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function inject(deviceId: string, body: unknown): Promise<FaultEvent> {
  const res = await service('POST', `/local/devices/${deviceId}/faults`, body);
  expect(res.status, res.body.toString()).toBe(202);
  return res.json() as FaultEvent;
}

async function withMethods(transport: 'mqtt' | 'amqp', deviceId: string): Promise<FaultClient> {
  const c = await faultClient(hub, transport, deviceId);
  clients.push(c);
  await c.client.open();
  c.client.onDeviceMethod('ping', (_request, response) => response.send(200, 'pong', () => undefined));
  await ping(deviceId);
  return c;
}

async function ping(deviceId: string, responseTimeoutInSeconds = 5): Promise<number> {
  return (await hub.invokeMethod(deviceId, { methodName: 'ping', connectTimeoutInSeconds: 5, responseTimeoutInSeconds })).status;
}

describe('the fault routes', () => {
  it('validate the body, know the device, list and clear what is active', async () => {
    hub.createDevice('n-rest');
    expect((await service('POST', '/local/devices/n-rest/faults', { kind: 'sideways', seconds: 1 })).status).toBe(400);
    expect((await service('POST', '/local/devices/n-rest/faults', { kind: 'blackhole' })).status).toBe(400);
    expect((await service('POST', '/local/devices/n-rest/faults', { kind: 'delay', seconds: 1 })).status).toBe(400);
    expect((await service('POST', '/local/devices/n-rest/faults', { type: 'KillEverything' })).status).toBe(400);
    expect((await service('POST', '/local/devices/nobody/faults', { kind: 'refuse', seconds: 1 })).status).toBe(404);
    expect((await hubRequest(hub, { method: 'GET', path: '/local/faults' })).status).toBe(401);

    const event = await inject('n-rest', { kind: 'refuse', seconds: 60 });
    expect(event).toMatchObject({ deviceId: 'n-rest', fault: 'refuse', phase: 'started' });
    await inject('n-rest', { type: 'InvokeThrottling', durationSeconds: 60 });
    const listed = (await service('GET', '/local/faults')).json() as Array<{ deviceId: string; fault: string; endsAt: string }>;
    expect(listed.filter((f) => f.deviceId === 'n-rest').map((f) => f.fault).sort()).toEqual(['InvokeThrottling', 'refuse']);
    expect(new Date(listed[0]!.endsAt).getTime()).toBe(clock.now() + 60_000);
    expect((await service('DELETE', '/local/devices/n-rest/faults')).json()).toEqual({ cleared: 2 });
    expect(hub.faults.active('n-rest')).toEqual([]);
  });

  it('trigger an IoT Hub fault from the service side, as the telemetry property does', async () => {
    const c = await withMethods('amqp', 'n-service-kill');
    const disconnected = once(c.transport, 'disconnect');
    const reconnected = nextConnect(hub, c.deviceId);
    const event = await inject(c.deviceId, { type: 'KillAmqpMethodReqLink' });
    expect(event.phase).toBe('scheduled');
    await disconnected;
    await reconnected;
    expect(await ping(c.deviceId)).toBe(200);
  });
});

describe('KillTcp over HTTPS', () => {
  it('destroys the device\'s keep-alive connection; the next request opens a new one', async () => {
    const c = await faultClient(hub, 'https', 'n-https-kill');
    clients.push(c);
    await c.client.open();
    const started = nextFault(hub, c.deviceId, 'KillTcp');
    expect(await sendEvent(c.client, faultMessage('KillTcp'))).toBeUndefined();
    const event = await started;
    expect(event.detail).toMatch(/transport destroyed/);
    // A request that races the reset onto the dead keep-alive socket fails, and the Http transport
    // does not retry a socket error; whichever way that race goes, the request after it succeeds.
    const raced = (await sendEvent(c.client, new Message('raced'))) as NodeJS.ErrnoException | undefined;
    if (raced) expect(raced.code).toBe('ECONNRESET');
    expect(await sendEvent(c.client, new Message('on a new connection'))).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe('on a new connection');
  });
});

describe('network faults', () => {
  it.each(['mqtt', 'amqp'] as const)('reset destroys the %s connection; the SDK reconnects', async (transport) => {
    const c = await withMethods(transport, `n-reset-${transport}`);
    const disconnected = once(c.transport, 'disconnect');
    const reconnected = nextConnect(hub, c.deviceId);
    const event = await inject(c.deviceId, { kind: 'reset' });
    expect(event.connectionIds).toHaveLength(1);
    await disconnected;
    await reconnected;
    // No ghost of the reset connection is left to swallow the call.
    expect(hub.stats().connectedIdentities.filter((s) => s.deviceId === c.deviceId)).toHaveLength(1);
    expect(await ping(c.deviceId)).toBe(200);
  });

  it('blackhole stops all traffic without closing the connection, then lets it flow', async () => {
    const c = await withMethods('mqtt', 'n-blackhole');
    let dropped = false;
    c.transport.once('disconnect', () => { dropped = true; });
    const connectionBefore = hub.stats().connectedIdentities.find((s) => s.deviceId === c.deviceId)?.connectionId;
    const event = await inject(c.deviceId, { kind: 'blackhole', seconds: 30 });
    expect(event.detail).toMatch(/no traffic on 1 connection/);
    // The request never reaches the device, so the call times out as with a dead network.
    const unanswered = hub.invokeMethod(c.deviceId, { methodName: 'ping', responseTimeoutInSeconds: 1 });
    clock.advance(1_000);
    await expect(unanswered).rejects.toSatisfy((e) => e instanceof HubError && e.errorCode === 504101);
    const held = sendEvent(c.client, new Message('held in the black hole'));
    const ended = nextFault(hub, c.deviceId, 'blackhole', 'ended');
    clock.advance(30_000);
    await ended;
    expect(await held).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe('held in the black hole');
    expect(await ping(c.deviceId)).toBe(200);
    expect(dropped).toBe(false);
    expect(hub.stats().connectedIdentities.find((s) => s.deviceId === c.deviceId)?.connectionId).toBe(connectionBefore);
  });

  it('delay holds every write to the device, so a round trip takes at least that long', async () => {
    const c = await withMethods('amqp', 'n-delay');
    await inject(c.deviceId, { kind: 'delay', delayMs: 400, seconds: 30 });
    const started = Date.now();
    expect(await ping(c.deviceId)).toBe(200);
    // A lower bound only: load can lengthen the trip, never shorten it below the injected delay.
    expect(Date.now() - started).toBeGreaterThanOrEqual(390);
    const ended = nextFault(hub, c.deviceId, 'delay', 'ended');
    clock.advance(30_000);
    await ended;
    expect(await ping(c.deviceId)).toBe(200);
  });

  it.each(['mqtt', 'amqp'] as const)('refuse cuts the device\'s new %s connections until the window ends', async (transport) => {
    const c = await withMethods(transport, `n-refuse-${transport}`);
    await inject(c.deviceId, { kind: 'refuse', seconds: 30 });
    const refused = nextFault(hub, c.deviceId, 'refuse', 'started');
    const reconnected = nextConnect(hub, c.deviceId);
    // The open connection is not affected; reset it so the SDK has to dial again.
    await inject(c.deviceId, { kind: 'reset' });
    expect((await refused).detail).toMatch(new RegExp(`refused new ${transport} connection`));
    clock.advance(30_000);
    await reconnected;
    expect(await ping(c.deviceId)).toBe(200);
  });

  it('throttle-https answers the device\'s HTTPS requests 429 until the window ends', async () => {
    const c = await faultClient(hub, 'https', 'n-429', { noRetry: true });
    clients.push(c);
    await c.client.open();
    expect(await sendEvent(c.client, new Message('before'))).toBeUndefined();
    await inject(c.deviceId, { kind: 'throttle-https', seconds: 30 });
    const refused = (await sendEvent(c.client, new Message('throttled'))) as (Error & { response?: { statusCode?: number } }) | undefined;
    expect(refused?.response?.statusCode).toBe(429);
    clock.advance(30_000);
    expect(await sendEvent(c.client, new Message('after'))).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).map((r) => r.body.toString())).toEqual(['before', 'after']);
  });
});
