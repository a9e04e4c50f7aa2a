// IoT Hub's window faults (InvokeThrottling, InvokeMaxMessageQuota, InvokeAuthError, and the
// local InvokeServiceUnavailable) and the fault delay, from the unmodified Azure device SDK over
// AMQP, HTTPS and MQTT. The hub runs on a manual clock: a window ends when the test moves the
// clock past it, never by waiting, so a loaded machine cannot make a window close early or late.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { faultClient, faultMessage, nextFault, once, sendEvent, Message, type FaultClient } from './support/faults.ts';

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

async function open(transport: 'amqp' | 'https' | 'mqtt', deviceId: string, noRetry: boolean): Promise<FaultClient> {
  const c = await faultClient(hub, transport, deviceId, { noRetry });
  clients.push(c);
  await c.client.open();
  return c;
}

const FAULTS = [
  // [fault, what the Azure SDK reports over AMQP, over HTTPS (name, status)]
  ['InvokeThrottling', 'ThrottlingError', 'Error', 429],
  ['InvokeMaxMessageQuota', 'IotHubQuotaExceededError', 'IotHubQuotaExceededError', 403],
  ['InvokeAuthError', 'UnauthorizedError', 'UnauthorizedError', 401],
  ['InvokeServiceUnavailable', 'ServiceUnavailableError', 'ServiceUnavailableError', 503],
] as const;

describe.each(FAULTS)('%s', (fault, amqpError, httpError, httpStatus) => {
  it(`over AMQP: telemetry is rejected with ${amqpError} for the window, the connection stays, then sends succeed`, async () => {
    const c = await open('amqp', `w-amqp-${fault}`, true);
    let dropped = false;
    c.transport.once('disconnect', () => { dropped = true; });
    const started = nextFault(hub, c.deviceId, fault);
    expect(await sendEvent(c.client, faultMessage(fault, { duration: 5 }))).toBeUndefined();
    expect((await started).detail).toMatch(/for 5 s/);
    const refused = await sendEvent(c.client, new Message('inside the window'));
    expect(refused?.name).toBe(amqpError);
    expect(hub.telemetry({ deviceId: c.deviceId }).map((r) => r.body.toString())).not.toContain('inside the window');
    clock.advance(5_000);
    expect(await sendEvent(c.client, new Message('after the window'))).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe('after the window');
    expect(dropped).toBe(false);
  });

  it(`over HTTPS: telemetry is answered ${httpStatus} (${httpError}) for the window, then sends succeed`, async () => {
    const c = await open('https', `w-https-${fault}`, true);
    expect(await sendEvent(c.client, faultMessage(fault, { duration: 5 }))).toBeUndefined();
    const refused = (await sendEvent(c.client, new Message('inside the window'))) as (Error & { response?: { statusCode?: number } }) | undefined;
    expect(refused?.name).toBe(httpError);
    expect(refused?.response?.statusCode).toBe(httpStatus);
    clock.advance(5_000);
    expect(await sendEvent(c.client, new Message('after the window'))).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe('after the window');
  });

  it('over MQTT, which has no negative PUBACK: the connection is dropped, and the SDK delivers once the window is over', async () => {
    const c = await open('mqtt', `w-mqtt-${fault}`, false);
    expect(await sendEvent(c.client, faultMessage(fault, { duration: 5 }))).toBeUndefined();
    const dropped = once(c.transport, 'disconnect');
    const refusedTelemetry = new Promise<void>((resolve) => {
      const listener = (e: { deviceId?: string; what: string }): void => {
        if (e.deviceId !== c.deviceId || e.what !== 'telemetry') return;
        hub.off('refused', listener);
        resolve();
      };
      hub.on('refused', listener);
    });
    const delivered = sendEvent(c.client, new Message('retried past the window'));
    await refusedTelemetry;
    await dropped;
    clock.advance(5_000);
    // The SDK's retry policy reconnects and publishes again; now the hub takes it.
    expect(await delivered).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe('retried past the window');
  });
});

describe('fault timing on the hub clock', () => {
  it('DelayInSecs: a window fault starts only when the clock reaches it', async () => {
    const c = await open('amqp', 'w-delay-window', true);
    const started = nextFault(hub, c.deviceId, 'InvokeThrottling');
    expect(await sendEvent(c.client, faultMessage('InvokeThrottling', { delay: 2, duration: 3 }))).toBeUndefined();
    expect(await sendEvent(c.client, new Message('before the delay'))).toBeUndefined();
    clock.advance(2_000);
    await started;
    expect((await sendEvent(c.client, new Message('inside')))?.name).toBe('ThrottlingError');
    clock.advance(3_000);
    expect(await sendEvent(c.client, new Message('after'))).toBeUndefined();
  });

  it('DelayInSecs: a kill fault cuts only when the clock reaches it', async () => {
    const c = await open('amqp', 'w-delay-kill', true);
    let cut = false;
    const disconnected = once(c.transport, 'disconnect').then(() => { cut = true; });
    expect(await sendEvent(c.client, faultMessage('KillTcp', { delay: 3 }))).toBeUndefined();
    expect(await sendEvent(c.client, new Message('during the delay'))).toBeUndefined();
    expect(cut).toBe(false);
    expect(hub.faults.active(c.deviceId)).toEqual([]);
    clock.advance(3_000);
    await disconnected;
  });

  it('a malformed request is reported as ignored and the message still arrives', async () => {
    const c = await open('amqp', 'w-bad', true);
    const ignored = nextFault(hub, c.deviceId, 'KillTcp', 'ignored');
    const m = faultMessage('KillTcp', { delay: -1 });
    expect(await sendEvent(c.client, m)).toBeUndefined();
    expect((await ignored).detail).toMatch(/DelayInSecs must be a number of seconds >= 0/);
    expect(hub.telemetry({ deviceId: c.deviceId })).toHaveLength(1);
  });
});
