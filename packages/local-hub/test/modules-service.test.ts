// The module registry, module twins and module methods through azure-iothub's Registry and
// Client, unchanged, over the hub's service REST API (TLS verification on with the hub's CA).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Module } from 'azure-iothub';
import { createMemoryLogger, createSasToken, startLocalHub, type LocalHub } from '../src/index.ts';
import { API, hubRequest, serviceHeaders } from './support/https-helpers.ts';
import { serviceClient, serviceRegistry, within } from './support/module-clients.ts';

const WAIT_MS = 15_000;
const KEY = /^[A-Za-z0-9+/]{43}=$/;

let hub: LocalHub;

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, hostName: 'modules-service.azure-devices.net', logger: createMemoryLogger(), devices: ['preset/seeded'] });
});

afterAll(async () => {
  await hub.close();
});

/** What azure-iothub callbacks and promises resolve to: the body, as the SDK parsed it. */
async function body<T>(call: Promise<{ responseBody: T }>): Promise<T> {
  return (await within(call, WAIT_MS, 'service call')).responseBody;
}

describe('Registry module calls', () => {
  it('adds a module with generated keys, reads it back, lists the device\'s modules and removes it', async () => {
    const registry = serviceRegistry(hub);
    hub.createDevice('reg-d');
    const added = await body(registry.addModule({ deviceId: 'reg-d', moduleId: 'filter' })) as Module;
    expect(added).toMatchObject({ deviceId: 'reg-d', moduleId: 'filter', connectionState: 'Disconnected', authentication: { type: 'sas' } });
    expect(added.authentication?.symmetricKey?.primaryKey).toMatch(KEY);
    expect(added.authentication?.symmetricKey?.secondaryKey).toMatch(KEY);
    expect(hub.getModule('reg-d', 'filter')?.authentication).toEqual({ type: 'sas', primaryKey: added.authentication?.symmetricKey?.primaryKey, secondaryKey: added.authentication?.symmetricKey?.secondaryKey });

    const got = await body(registry.getModule('reg-d', 'filter')) as Module;
    expect(got.etag).toBe(added.etag);
    await body(registry.addModule({ deviceId: 'reg-d', moduleId: 'second' }));
    const listed = await body(registry.getModulesOnDevice('reg-d')) as Module[];
    expect(listed.map((m) => m.moduleId).sort()).toEqual(['filter', 'second']);
    // The device itself is not one of its modules, and its registry entry is unchanged.
    expect(hub.getDevice('reg-d')).toBeDefined();

    await within(registry.removeModule('reg-d', 'filter'), WAIT_MS, 'removeModule');
    expect(hub.getModule('reg-d', 'filter')).toBeUndefined();
    await expect(within(registry.getModule('reg-d', 'filter'), WAIT_MS, 'getModule')).rejects.toMatchObject({ responseBody: expect.stringContaining('ModuleNotFound') });
  });

  it('updates a module with its etag, refuses a stale one, and forces with *', async () => {
    const registry = serviceRegistry(hub);
    hub.createDevice('upd-d');
    const added = await body(registry.addModule({ deviceId: 'upd-d', moduleId: 'm' })) as Module;
    const primaryKey = Buffer.alloc(32, 1).toString('base64');
    const secondaryKey = Buffer.alloc(32, 2).toString('base64');
    const updated = await body(registry.updateModule({ ...added, authentication: { type: 'sas', symmetricKey: { primaryKey, secondaryKey } } } as Module)) as Module;
    expect(updated.etag).not.toBe(added.etag);
    expect(updated.authentication?.symmetricKey).toEqual({ primaryKey, secondaryKey });
    await expect(within(registry.updateModule({ ...added, managedBy: 'me' } as Module), WAIT_MS, 'stale update')).rejects.toMatchObject({ name: 'InvalidEtagError' });
    const forced = await body(registry.updateModule({ deviceId: 'upd-d', moduleId: 'm', managedBy: 'me' } as Module, true)) as Module;
    expect(forced.managedBy).toBe('me');
    // A stale etag on remove is refused too (removing by ids sends '*'). The SDK's promise form
    // loses its callback when given a Module object, so this one uses the callback form.
    const staleRemove = new Promise<unknown>((resolve) => registry.removeModule(added, (err?: Error) => resolve(err)));
    expect(await within(staleRemove, WAIT_MS, 'stale remove')).toMatchObject({ name: 'InvalidEtagError' });
    expect(hub.getModule('upd-d', 'm')).toBeDefined();
  });

  it('refuses a module of an unknown device and a module that already exists, as IoT Hub does', async () => {
    const registry = serviceRegistry(hub);
    await expect(within(registry.addModule({ deviceId: 'nobody', moduleId: 'm' }), WAIT_MS, 'add to ghost')).rejects.toMatchObject({ name: 'DeviceNotFoundError' });
    hub.createDevice('dup-d');
    await body(registry.addModule({ deviceId: 'dup-d', moduleId: 'm' }));
    await expect(within(registry.addModule({ deviceId: 'dup-d', moduleId: 'm' }), WAIT_MS, 'add twice')).rejects.toMatchObject({ name: 'DeviceAlreadyExistsError', responseBody: expect.stringContaining('ModuleAlreadyExistsOnDevice') });
    await expect(within(registry.getModulesOnDevice('nobody'), WAIT_MS, 'list ghost')).rejects.toMatchObject({ name: 'DeviceNotFoundError' });
  });

  it('removes a device\'s modules with the device', async () => {
    const registry = serviceRegistry(hub);
    hub.createDevice('gone-d');
    await body(registry.addModule({ deviceId: 'gone-d', moduleId: 'm' }));
    await within(registry.delete('gone-d'), WAIT_MS, 'delete device');
    expect(hub.getModule('gone-d', 'm')).toBeUndefined();
    hub.createDevice('gone-d');
    expect(hub.listModules('gone-d')).toEqual([]);
  });

  it('registers modules given as <deviceId>/<moduleId> in the devices option', async () => {
    const registry = serviceRegistry(hub);
    const seeded = await body(registry.getModule('preset', 'seeded')) as Module;
    expect(seeded.authentication?.symmetricKey?.primaryKey).toMatch(KEY);
    expect(hub.moduleConnectionString('preset', 'seeded')).toContain(`DeviceId=preset;ModuleId=seeded;SharedAccessKey=${seeded.authentication?.symmetricKey?.primaryKey}`);
    expect(hub.deviceConnectionString('preset/seeded')).toBe(hub.moduleConnectionString('preset', 'seeded'));
  });
});

describe('module twins', () => {
  it('reads and patches a module twin apart from the device twin; a stale etag is refused', async () => {
    const registry = serviceRegistry(hub);
    hub.createDevice('twin-d');
    hub.createModule('twin-d', 'm');
    const twin = await within(registry.getModuleTwin('twin-d', 'm'), WAIT_MS, 'getModuleTwin');
    const first = twin.responseBody as unknown as { deviceId: string; moduleId: string; etag: string; properties: { desired: Record<string, unknown> } };
    expect(first).toMatchObject({ deviceId: 'twin-d', moduleId: 'm', properties: { desired: { $version: 1 } } });
    const patched = await body(registry.updateModuleTwin('twin-d', 'm', { properties: { desired: { rate: 3 } } }, first.etag)) as unknown as typeof first;
    expect(patched.properties.desired).toMatchObject({ rate: 3, $version: 2 });
    expect(hub.readModuleTwin('twin-d', 'm').desired).toMatchObject({ rate: 3 });
    expect(hub.readTwin('twin-d').desired).not.toHaveProperty('rate');
    await expect(within(registry.updateModuleTwin('twin-d', 'm', { properties: { desired: { rate: 4 } } }, first.etag), WAIT_MS, 'stale twin')).rejects.toMatchObject({ name: 'InvalidEtagError' });
    // The SDK's Twin object updates through updateModuleTwin as well, with the etag it was read with.
    const fresh = (await within(registry.getModuleTwin('twin-d', 'm'), WAIT_MS, 'getModuleTwin again')).responseBody;
    await within(fresh.update({ properties: { desired: { rate: 5 } } }), WAIT_MS, 'Twin.update');
    expect(hub.readModuleTwin('twin-d', 'm').desired).toMatchObject({ rate: 5 });
    // Tags too, as IoT Hub keeps them on module twins.
    const latest = (await within(registry.getModuleTwin('twin-d', 'm'), WAIT_MS, 'getModuleTwin for tags')).responseBody as unknown as typeof first;
    const tagged = await body(registry.updateModuleTwin('twin-d', 'm', { tags: { site: 'north' } }, latest.etag)) as unknown as { tags: Record<string, unknown> };
    expect(tagged.tags).toEqual({ site: 'north' });
    expect(hub.readModuleTwin('twin-d', 'm').tags).toEqual({ site: 'north' });
    const deviceTwin = (await within(registry.getTwin('twin-d'), WAIT_MS, 'device twin')).responseBody as unknown as { tags?: Record<string, unknown> };
    expect(deviceTwin.tags ?? {}).toEqual({});
  });
});

describe('module methods from the service', () => {
  it('fails with 404103 while the module is not connected, as IoT Hub does', async () => {
    hub.createDevice('offline-d');
    hub.createModule('offline-d', 'm');
    const client = serviceClient(hub);
    await expect(within(client.invokeDeviceMethod('offline-d', 'm', { methodName: 'ping', payload: null, responseTimeoutInSeconds: 5 }), WAIT_MS, 'invoke offline'))
      .rejects.toMatchObject({ responseBody: expect.stringContaining('404103') });
    await expect(within(client.invokeDeviceMethod('offline-d', 'ghost', { methodName: 'ping', payload: null, responseTimeoutInSeconds: 5 }), WAIT_MS, 'invoke ghost'))
      .rejects.toMatchObject({ responseBody: expect.stringContaining('ModuleNotFound') });
  });
});

describe('device-only paths', () => {
  it('does not serve a module identity on the HTTPS device API, nor C2D to a module, even with an encoded slash', async () => {
    hub.createDevice('path-d');
    const module = hub.createModule('path-d', 'm');
    if (module.authentication.type !== 'sas') throw new Error('expected SAS keys');
    const token = createSasToken(`${hub.hostName}/devices/path-d/modules/m`, module.authentication.primaryKey, Math.floor(Date.now() / 1000) + 600);
    const telemetry = await hubRequest(hub, { method: 'POST', path: `/devices/path-d%2Fm/messages/events?${API}`, headers: { Authorization: token }, body: 'x' });
    expect(telemetry.status).toBe(404);
    expect(telemetry.json()).toMatchObject({ Message: expect.stringContaining('does not serve module identities') });
    const c2d = await hubRequest(hub, { method: 'POST', path: '/local/devices/path-d%2Fm/c2d', headers: serviceHeaders(hub, { 'Content-Type': 'application/json' }), body: JSON.stringify({ body: 'x' }) });
    expect(c2d.status).toBe(400);
    expect(c2d.json()).toMatchObject({ Message: expect.stringContaining('no cloud-to-device messages for module identities') });
    expect(hub.telemetry({ deviceId: 'path-d' })).toHaveLength(0);
  });
});
