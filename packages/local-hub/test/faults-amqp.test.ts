// IoT Hub's kill faults over AMQP, triggered the way the Azure SDKs' e2e suites do it (a telemetry
// message with AzIoTHub_Fault* properties) from the unmodified azure-iot-device-amqp client, TLS
// verified against the hub's CA. Each test waits for the effect on the device (its transport
// reports the disconnect) and for the recovery (the SDK reconnects by itself, and the feature the
// fault cut works again).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Twin } from 'azure-iot-device';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { faultClient, faultMessage, nextConnect, nextFault, once, sendEvent, within, Message, type FaultClient } from './support/faults.ts';

let hub: LocalHub;
const clients: FaultClient[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: createMemoryLogger() });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await hub?.close();
});

/** A client with methods, twin and C2D enabled: the SDK then reconnects by itself after a drop. */
async function fullClient(deviceId: string, transport: 'amqp' | 'amqp-ws' = 'amqp'): Promise<{ c: FaultClient; twin: Twin; c2d: string[] }> {
  const c = await faultClient(hub, transport, deviceId);
  clients.push(c);
  await c.client.open();
  c.client.onDeviceMethod('ping', (_request, response) => response.send(200, 'pong', () => undefined));
  const c2d: string[] = [];
  c.client.on('message', (m: InstanceType<typeof Message>) => {
    c2d.push(m.data.toString());
    c.client.complete(m, () => undefined);
  });
  const twin = await c.client.getTwin();
  return { c, twin, c2d };
}

function reportTwin(twin: Twin, patch: Record<string, unknown>): Promise<void> {
  return new Promise((resolve, reject) => twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())));
}

async function waitUntil(probe: () => boolean, what: string): Promise<void> {
  await within((async () => {
    while (!probe()) await new Promise((r) => setTimeout(r, 20));
  })(), 10_000, what);
}

async function methodWorks(deviceId: string): Promise<void> {
  // The method subscription is re-established just after the reconnect; allow it to arrive.
  const result = await hub.invokeMethod(deviceId, { methodName: 'ping', responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 });
  expect(result.status).toBe(200);
}

/**
 * Triggers `fault` from the device and returns what the hub did, once the device's transport has
 * reported the disconnect and the device is connected again.
 */
async function faultAndRecover(c: FaultClient, fault: string): Promise<{ detail: string; error: Error }> {
  const disconnected = once<Error>(c.transport, 'disconnect');
  const reconnected = nextConnect(hub, c.deviceId);
  const started = nextFault(hub, c.deviceId, fault);
  // The fault-carrying message itself is accepted, as IoT Hub does.
  expect(await sendEvent(c.client, faultMessage(fault, { reason: `test ${fault}` }))).toBeUndefined();
  const event = await started;
  const error = await disconnected;
  await reconnected;
  return { detail: event.detail, error };
}

describe('AMQP kill faults with the Azure device SDK', () => {
  it('KillTcp destroys the transport; the SDK reconnects', async () => {
    const { c } = await fullClient('f-amqp-tcp');
    const { detail, error } = await faultAndRecover(c, 'KillTcp');
    expect(detail).toMatch(/transport destroyed/);
    expect(error.name).toBe('NotConnectedError');
    await methodWorks(c.deviceId);
    expect(await sendEvent(c.client, new Message('after KillTcp'))).toBeUndefined();
  });

  it('KillAmqpConnection closes the connection with amqp:connection:forced; the application reopens', async () => {
    const { c } = await fullClient('f-amqp-conn');
    // azure-iot-amqp-base has no mapping for amqp:connection:forced, so the error is a plain Error,
    // which the SDK's default retry filter does not retry: the Client reports the disconnect and
    // leaves reconnecting to the application.
    const clientDisconnected = once<{ reason?: Error }>(c.client, 'disconnect');
    const transportDisconnected = once<Error>(c.transport, 'disconnect');
    const started = nextFault(hub, c.deviceId, 'KillAmqpConnection');
    expect(await sendEvent(c.client, faultMessage('KillAmqpConnection'))).toBeUndefined();
    expect((await started).detail).toMatch(/amqp:connection:forced/);
    expect((await transportDisconnected).name).toBe('Error');
    await clientDisconnected;
    const reconnected = nextConnect(hub, c.deviceId);
    await c.client.open();
    await reconnected;
    expect(await sendEvent(c.client, new Message('after KillAmqpConnection'))).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe('after KillAmqpConnection');
  });

  it('ShutDownAmqp closes the connection cleanly; the SDK reconnects', async () => {
    const { c } = await fullClient('f-amqp-shutdown');
    const { detail, error } = await faultAndRecover(c, 'ShutDownAmqp');
    expect(detail).toMatch(/closed cleanly/);
    expect(error.name).toBe('NotConnectedError');
    await methodWorks(c.deviceId);
  });

  it('KillAmqpSession ends the session; the SDK reconnects', async () => {
    const { c } = await fullClient('f-amqp-session');
    const { detail, error } = await faultAndRecover(c, 'KillAmqpSession');
    expect(detail).toMatch(/1 session\(s\) ended/);
    expect(error.name).toBe('ServiceUnavailableError');
    await methodWorks(c.deviceId);
  });

  it.each([
    ['KillAmqpCBSLinkReq', /cbs device→hub/],
    ['KillAmqpCBSLinkResp', /cbs hub→device/],
    ['KillAmqpD2CLink', /events device→hub/],
  ])('%s detaches that link with detach-forced; the SDK reconnects and sends again', async (fault, what) => {
    const { c } = await fullClient(`f-amqp-${fault}`);
    const { detail, error } = await faultAndRecover(c, fault);
    expect(detail).toMatch(what);
    expect(error.name).toBe('ServiceUnavailableError');
    expect(await sendEvent(c.client, new Message(`after ${fault}`))).toBeUndefined();
    expect(hub.telemetry({ deviceId: c.deviceId }).at(-1)?.body.toString()).toBe(`after ${fault}`);
  });

  it('KillAmqpC2DLink detaches the devicebound link; after the reconnect C2D arrives again', async () => {
    const { c, c2d } = await fullClient('f-amqp-c2d');
    const { detail, error } = await faultAndRecover(c, 'KillAmqpC2DLink');
    expect(detail).toMatch(/c2d hub→device/);
    expect(error.name).toBe('ServiceUnavailableError');
    hub.sendC2D(c.deviceId, { body: Buffer.from('after KillAmqpC2DLink') });
    await waitUntil(() => c2d.includes('after KillAmqpC2DLink'), 'C2D after the fault');
  });

  it.each([
    ['KillAmqpTwinLinkReq', /twin device→hub/],
    ['KillAmqpTwinLinkResp', /twin hub→device/],
  ])('%s detaches that twin link; after the reconnect reported properties go through', async (fault, what) => {
    const { c, twin } = await fullClient(`f-amqp-${fault}`);
    const { detail, error } = await faultAndRecover(c, fault);
    expect(detail).toMatch(what);
    expect(error.name).toBe('ServiceUnavailableError');
    await reportTwin(twin, { after: fault });
    expect(hub.readTwin(c.deviceId).reported['after']).toBe(fault);
  });

  it.each([
    ['KillAmqpMethodReqLink', /methods hub→device/],
    ['KillAmqpMethodRespLink', /methods device→hub/],
  ])('%s detaches that method link; after the reconnect methods are answered', async (fault, what) => {
    const { c } = await fullClient(`f-amqp-${fault}`);
    const { detail, error } = await faultAndRecover(c, fault);
    expect(detail).toMatch(what);
    expect(error.name).toBe('ServiceUnavailableError');
    await methodWorks(c.deviceId);
  });

  it('KillTcp over AMQP-WS drops the WebSocket; the SDK reconnects', async () => {
    const { c } = await fullClient('f-amqpws-tcp', 'amqp-ws');
    const { detail } = await faultAndRecover(c, 'KillTcp');
    expect(detail).toMatch(/transport destroyed/);
    await methodWorks(c.deviceId);
  });
});

describe('faults that do not apply to a transport', () => {
  it('an AMQP link fault sent over MQTT is reported as ignored and the connection stays', async () => {
    const c = await faultClient(hub, 'mqtt', 'f-mqtt-ignored');
    clients.push(c);
    await c.client.open();
    let dropped = false;
    c.transport.once('disconnect', () => { dropped = true; });
    const ignored = nextFault(hub, c.deviceId, 'KillAmqpD2CLink', 'ignored');
    expect(await sendEvent(c.client, faultMessage('KillAmqpD2CLink'))).toBeUndefined();
    expect((await ignored).detail).toMatch(/no connection/);
    expect(await sendEvent(c.client, new Message('still connected'))).toBeUndefined();
    expect(dropped).toBe(false);
  });
});

