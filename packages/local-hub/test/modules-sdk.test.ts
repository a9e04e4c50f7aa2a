// Module identities driven by Microsoft's own clients, unchanged: azure-iot-device's ModuleClient
// over MQTT, MQTT-WS, AMQP and AMQP-WS (real TLS on loopback, verification on with the hub's CA),
// and azure-iothub's Client invoking the module's methods. Every wait is on an event.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import azureDevice, { type Client, type ModuleClient, type Twin } from 'azure-iot-device';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { azureClient } from './support/azure-clients.ts';
import { MODULE_TRANSPORTS, moduleClient, nextEvent, serviceClient, serviceRegistry, within } from './support/module-clients.ts';

const { Message } = azureDevice;
const WAIT_MS = 15_000;

let hub: LocalHub;
const open: Array<{ close(): Promise<unknown> }> = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, hostName: 'modules-sdk.azure-devices.net', logger: createMemoryLogger() });
});

afterAll(async () => {
  await Promise.all(open.map((c) => within(c.close(), 5000, 'client close').catch(() => undefined)));
  await hub.close();
});

function register(deviceId: string, moduleId: string): void {
  if (!hub.getDevice(deviceId)) hub.createDevice(deviceId);
  if (!hub.getModule(deviceId, moduleId)) hub.createModule(deviceId, moduleId);
}

function enableDesired(twin: Twin): Promise<void> {
  return new Promise((resolve, reject) => twin.enableTwinDesiredPropertiesUpdates((err?: Error) => (err ? reject(err) : resolve())));
}

describe.each(MODULE_TRANSPORTS)('ModuleClient over %s', (transport) => {
  const id = (name: string): string => `${transport}-${name}`;

  async function openModule(deviceId: string, moduleId: string): Promise<ModuleClient> {
    register(deviceId, moduleId);
    const client = await moduleClient(hub, transport, deviceId, moduleId);
    open.push(client);
    const connected = nextEvent(hub, 'connected', (s) => s.deviceId === deviceId && s.moduleId === moduleId);
    await within(client.open(), WAIT_MS, 'module open');
    await within(connected, WAIT_MS, 'module connected');
    return client;
  }

  it('connects with the module\'s key and sends telemetry the hub records under the module', async () => {
    const deviceId = id('telemetry');
    const client = await openModule(deviceId, 'sensor');
    const received = nextEvent(hub, 'telemetry', (r) => r.deviceId === deviceId);
    const message = new Message('{"t":21}');
    message.messageId = `mod-${transport}`;
    message.properties.add('unit', 'C');
    await within(client.sendEvent(message), WAIT_MS, 'sendEvent');
    const [record] = await within(received, WAIT_MS, 'telemetry event');
    expect(record).toMatchObject({ deviceId, moduleId: 'sensor', protocol: transport, properties: { unit: 'C' }, systemProperties: { messageId: `mod-${transport}` } });
    expect(record.body.toString()).toBe('{"t":21}');
    expect(hub.telemetry({ deviceId, moduleId: 'sensor' })).toHaveLength(1);
    expect(hub.telemetry({ deviceId, moduleId: 'other' })).toHaveLength(0);
    expect(hub.stats().connectedIdentities).toContainEqual(expect.objectContaining({ deviceId, moduleId: 'sensor', protocol: transport }));
    // The registry tells the two identities apart: the module is connected, its device is not.
    const registry = serviceRegistry(hub);
    expect((await within(registry.getModule(deviceId, 'sensor'), WAIT_MS, 'getModule')).responseBody.connectionState).toBe('Connected');
    expect((await within(registry.get(deviceId), WAIT_MS, 'get device')).responseBody.connectionState).toBe('Disconnected');
  });

  it('reads the module twin, patches its reported properties and gets desired updates, apart from the device twin', async () => {
    const deviceId = id('twin');
    register(deviceId, 'm');
    hub.updateModuleDesired(deviceId, 'm', { interval: 5 });
    const client = await openModule(deviceId, 'm');
    const twin = await within(client.getTwin(), WAIT_MS, 'getTwin');
    expect(twin.properties.desired.interval).toBe(5);
    await within(new Promise<void>((resolve, reject) => twin.properties.reported.update({ fw: '2.0' }, (err?: Error) => (err ? reject(err) : resolve()))), WAIT_MS, 'reported update');
    expect(hub.readModuleTwin(deviceId, 'm').reported).toMatchObject({ fw: '2.0' });
    expect(hub.readTwin(deviceId).reported).not.toHaveProperty('fw');

    const patched = new Promise<Record<string, unknown>>((resolve) => {
      twin.on('properties.desired', (delta: Record<string, unknown>) => { if (delta.interval === 9) resolve(delta); });
    });
    // The listener's own subscription is fire-and-forget; this one, queued behind it on the same
    // connection, calls back once the hub holds the desired subscription.
    await within(enableDesired(twin), WAIT_MS, 'desired subscription');
    hub.updateDesired(deviceId, { interval: 1 });
    const after = hub.updateModuleDesired(deviceId, 'm', { interval: 9 });
    const delta = await within(patched, WAIT_MS, 'desired patch');
    expect(delta.$version).toBe(after.desired.$version);
  });

  it('answers a module method invoked by azure-iothub\'s Client.invokeDeviceMethod(deviceId, moduleId, …)', async () => {
    const deviceId = id('method');
    const client = await openModule(deviceId, 'm');
    client.onMethod('echo', (request, response) => {
      if (request && response) void response.send(200, { echo: request.payload, module: 'm' });
    });
    const service = serviceClient(hub);
    // connectTimeoutInSeconds makes the hub wait for the module's method subscription, which
    // onMethod sets up asynchronously.
    const { result } = await within(service.invokeDeviceMethod(deviceId, 'm', { methodName: 'echo', payload: { n: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 }), WAIT_MS, 'invoke');
    expect(result).toEqual({ status: 200, payload: { echo: { n: 1 }, module: 'm' } });
    // The device itself has no such subscription: IoT Hub keeps the two identities' methods apart.
    await expect(within(service.invokeDeviceMethod(deviceId, { methodName: 'echo', payload: null, responseTimeoutInSeconds: 5 }), WAIT_MS, 'device invoke')).rejects.toMatchObject({ responseBody: expect.stringContaining('404103') });
  });

  it('keeps a device connection and its module\'s connection side by side; a second connection of the module replaces the first', async () => {
    const deviceId = id('coexist');
    register(deviceId, 'm');
    const device = hub.getDevice(deviceId);
    if (device?.authentication.type !== 'sas') throw new Error('expected a SAS device');
    const deviceConnected = nextEvent(hub, 'connected', (s) => s.deviceId === deviceId && s.moduleId === undefined);
    const deviceClient: Client = await azureClient(hub, transport, deviceId, device.authentication.primaryKey);
    open.push(deviceClient);
    await within(deviceClient.open(), WAIT_MS, 'device open');
    const [deviceSession] = await within(deviceConnected, WAIT_MS, 'device connected');

    const firstConnected = nextEvent(hub, 'connected', (s) => s.deviceId === deviceId && s.moduleId === 'm');
    const first = await openModule(deviceId, 'm');
    const [firstSession] = await firstConnected;
    const disconnects: string[] = [];
    hub.on('disconnected', (s) => { if (s.deviceId === deviceId) disconnects.push(`${s.moduleId ?? '(device)'}:${s.connectionId}`); });

    // Both identities work at the same time.
    await within(deviceClient.sendEvent(new Message('from device')), WAIT_MS, 'device send');
    await within(first.sendEvent(new Message('from module')), WAIT_MS, 'module send');
    expect(hub.telemetry({ deviceId }).map((r) => [r.moduleId ?? null, r.body.toString()])).toEqual([[null, 'from device'], ['m', 'from module']]);

    const firstReplaced = nextEvent(hub, 'disconnected', (s) => s.connectionId === firstSession.connectionId && s.moduleId === 'm');
    const second = await moduleClient(hub, transport, deviceId, 'm');
    open.push(second);
    await within(second.open(), WAIT_MS, 'second module open');
    const [replaced] = await within(firstReplaced, WAIT_MS, 'first module connection replaced');
    expect(replaced.reason).toMatch(/newer connection/);
    await within(second.sendEvent(new Message('from module again')), WAIT_MS, 'second module send');
    // The device's own connection was never touched.
    expect(disconnects).toEqual([`m:${firstSession.connectionId}`]);
    expect(hub.stats().connectedIdentities).toContainEqual(expect.objectContaining({ deviceId, connectionId: deviceSession.connectionId }));
    await within(deviceClient.sendEvent(new Message('device still here')), WAIT_MS, 'device send after');
  });

  it('refuses cloud-to-device (IoT Edge input) messages for a module, as IoT Hub has none, and says why', async () => {
    const deviceId = id('no-c2d');
    const client = await openModule(deviceId, 'm');
    const refused = nextEvent(hub, 'refused', (e) => e.deviceId === deviceId && e.moduleId === 'm');
    client.on('inputMessage', () => undefined);
    const [event] = await within(refused, WAIT_MS, 'refusal');
    expect(event.why).toMatch(/no cloud-to-device .*module|module identity/);
    expect(() => hub.sendC2D(`${deviceId}/m`, { body: Buffer.from('x') })).toThrow(/module/);
  });
});

describe('ModuleClient over Http', () => {
  it('is refused: the SDK sends module telemetry on the device\'s HTTPS path with the module\'s token, which names another identity', async () => {
    const deviceId = 'https-module';
    register(deviceId, 'm');
    const client = await moduleClient(hub, 'https', deviceId, 'm', { noRetry: true });
    open.push(client);
    const refused = nextEvent(hub, 'refused', (e) => e.deviceId === deviceId && e.protocol === 'https');
    await expect(within(client.sendEvent(new Message('over https')), WAIT_MS, 'https send')).rejects.toMatchObject({ name: 'UnauthorizedError' });
    const [event] = await within(refused, WAIT_MS, 'refusal');
    expect(event.why).toMatch(/module 'm'/);
    expect(hub.telemetry({ deviceId })).toHaveLength(0);
  });
});
