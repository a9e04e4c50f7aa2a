// IoT Hub's MQTT-side kill faults (KillTcp, ShutDownMqtt) from the unmodified azure-iot-device-mqtt
// client over MQTT and MQTT-WS, TLS verified: the device's transport reports the drop, the SDK
// reconnects by itself (methods are enabled), and a direct method is answered again.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { faultClient, faultMessage, nextConnect, nextFault, once, sendEvent, Message, type FaultClient } from './support/faults.ts';

let hub: LocalHub;
const clients: FaultClient[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: createMemoryLogger() });
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await hub?.close();
});

describe.each([
  ['mqtt', 'KillTcp', /transport destroyed/],
  ['mqtt', 'ShutDownMqtt', /shut down cleanly/],
  ['mqtt-ws', 'KillTcp', /transport destroyed/],
  ['mqtt-ws', 'ShutDownMqtt', /shut down cleanly/],
] as const)('%s: %s', (transport, fault, detail) => {
  it('drops the connection; the SDK reconnects and answers methods again', async () => {
    const deviceId = `m-${transport}-${fault}`;
    const c = await faultClient(hub, transport, deviceId);
    clients.push(c);
    await c.client.open();
    c.client.onDeviceMethod('ping', (_request, response) => response.send(200, 'pong', () => undefined));
    expect((await hub.invokeMethod(deviceId, { methodName: 'ping', connectTimeoutInSeconds: 5, responseTimeoutInSeconds: 5 })).status).toBe(200);

    const disconnected = once<Error>(c.transport, 'disconnect');
    const reconnected = nextConnect(hub, deviceId);
    const started = nextFault(hub, deviceId, fault);
    expect(await sendEvent(c.client, faultMessage(fault))).toBeUndefined();
    expect((await started).detail).toMatch(detail);
    expect((await disconnected).name).toBe('NotConnectedError');
    await reconnected;
    expect((await hub.invokeMethod(deviceId, { methodName: 'ping', connectTimeoutInSeconds: 5, responseTimeoutInSeconds: 5 })).status).toBe(200);
    expect(await sendEvent(c.client, new Message(`after ${fault}`))).toBeUndefined();
  });
});
