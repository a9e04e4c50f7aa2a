// Module identities in the hub core, without sockets: the registry rules, authentication by the
// module's own audience and keys, sessions per identity, and the module's own twin, methods and
// telemetry. No C2D for modules, as IoT Hub.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHubCore, createMemoryLogger, createSasToken, HubError, openHubStore, type LocalHubCore } from '../src/internal.ts';
import type { SessionInfo } from '../src/index.ts';

const HOST = 'modules-core.azure-devices.net';
let core: LocalHubCore;

beforeEach(() => {
  core = createHubCore({ hostName: HOST, store: openHubStore({ inMemory: true }), logger: createMemoryLogger() });
  core.createDevice('d');
  core.createModule('d', 'm');
});

afterEach(() => core.close());

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function keyOf(record: { authentication: { type: string } }): string {
  const auth = record.authentication as { type: 'sas'; primaryKey: string };
  if (auth.type !== 'sas') throw new Error('expected SAS keys');
  return auth.primaryKey;
}

const inAnHour = (): number => Math.floor(Date.now() / 1000) + 3600;
const moduleToken = (key: string, moduleId = 'm'): string => createSasToken(`${HOST}/devices/d/modules/${moduleId}`, key, inAnHour());
const deviceToken = (key: string): string => createSasToken(`${HOST}/devices/d`, key, inAnHour());

function kind(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof HubError) return error.kind;
    throw error;
  }
  return undefined;
}

describe('module registry', () => {
  it('registers a module under an existing device with generated keys, and refuses duplicates, ghosts and bad ids', () => {
    const module = core.getModule('d', 'm');
    expect(module).toMatchObject({ deviceId: 'd', moduleId: 'm', managedBy: '', authentication: { type: 'sas' } });
    expect(keyOf(module!)).not.toBe(keyOf(core.getDevice('d')!));
    expect(kind(() => core.createModule('d', 'm'))).toBe('ModuleAlreadyExistsOnDevice');
    expect(kind(() => core.createModule('ghost', 'm'))).toBe('DeviceNotFound');
    expect(kind(() => core.createModule('d', 'a/b'))).toBe('ArgumentInvalid');
    expect(kind(() => core.createModule('d', '$edgeHub'))).toBe('ArgumentInvalid');
    expect(kind(() => core.requireModule('d', 'nope'))).toBe('ModuleNotFound');
    expect(core.listModules('d').map((m) => m.moduleId)).toEqual(['m']);
    // A module is not a device: the device registry does not list it.
    expect(core.listDevices().map((d) => d.deviceId)).toEqual(['d']);
  });

  it('updates a module only with a matching etag, and new keys end its sessions but not its device\'s', () => {
    const before = core.getModule('d', 'm')!;
    const deviceSession = core.openSession('d', 'mqtt', 'c-dev');
    const moduleSession = core.openSession('d/m', 'amqp', 'c-mod');
    const kicked: string[] = [];
    deviceSession.onKicked((why) => kicked.push(`device: ${why}`));
    moduleSession.onKicked((why) => kicked.push(`module: ${why}`));
    expect(kind(() => core.putModule('d', 'm', { managedBy: 'x' }))).toBe('ModuleAlreadyExistsOnDevice');
    expect(kind(() => core.putModule('d', 'm', { managedBy: 'x' }, 'stale'))).toBe('PreconditionFailed');
    const renamed = core.putModule('d', 'm', { managedBy: 'x' }, before.etag);
    expect(renamed.etag).not.toBe(before.etag);
    expect(kicked).toEqual([]);
    core.putModule('d', 'm', { authentication: { type: 'sas', primaryKey: '', secondaryKey: '' } }, '*');
    expect(keyOf(core.getModule('d', 'm')!)).not.toBe(keyOf(before));
    expect(kicked).toEqual(['module: module credentials changed']);
  });
});

describe('module authentication', () => {
  it('accepts the module\'s own token and nothing else for the module identity', () => {
    const moduleKey = keyOf(core.getModule('d', 'm')!);
    const deviceKey = keyOf(core.getDevice('d')!);
    expect(core.authenticateSas('d/m', moduleToken(moduleKey))).toMatchObject({ ok: true, deviceId: 'd/m' });
    // The device's key does not sign for its module, nor the module's for the device.
    expect(core.authenticateSas('d/m', moduleToken(deviceKey))).toMatchObject({ ok: false, reason: 'bad-signature' });
    const moduleOnDevice = core.authenticateSas('d', moduleToken(moduleKey));
    expect(moduleOnDevice).toMatchObject({ ok: false, reason: 'wrong-audience' });
    expect(!moduleOnDevice.ok && moduleOnDevice.message).toMatch(/names module 'm' of that device, a separate identity/);
    const deviceOnModule = core.authenticateSas('d/m', deviceToken(deviceKey));
    expect(!deviceOnModule.ok && deviceOnModule.message).toMatch(/names the device itself/);
    expect(core.authenticateSas('d/other', moduleToken(moduleKey, 'other'))).toMatchObject({ ok: false, reason: 'unknown-device' });
    expect(core.counters('d/m').authFailures).toBe(2);
  });

  it('refuses a module of a disabled device and ends its live session, and a module removed with its device', () => {
    const moduleKey = keyOf(core.getModule('d', 'm')!);
    const session = core.openSession('d/m', 'mqtt', 'c1');
    const kicked: string[] = [];
    session.onKicked((why) => kicked.push(why));
    const device = core.getDevice('d')!;
    core.putDevice('d', { status: 'disabled' }, device.etag);
    expect(kicked).toEqual(['device disabled']);
    expect(core.authenticateSas('d/m', moduleToken(moduleKey))).toMatchObject({ ok: false, reason: 'disabled' });
    core.putDevice('d', { status: 'enabled' }, '*');
    expect(core.authenticateSas('d/m', moduleToken(moduleKey))).toMatchObject({ ok: true });
    const again = core.openSession('d/m', 'mqtt', 'c2');
    again.onKicked((why) => kicked.push(why));
    core.removeDevice('d');
    expect(kicked).toEqual(['device disabled', 'module removed']);
    expect(core.getModule('d', 'm')).toBeUndefined();
    expect(core.authenticateSas('d/m', moduleToken(moduleKey))).toMatchObject({ ok: false, reason: 'unknown-device' });
  });
});

describe('module sessions', () => {
  it('keeps a device and its module connected side by side; a newer connection of the module replaces the older', () => {
    const events: Array<SessionInfo & { reason?: string }> = [];
    core.on('connected', (s) => events.push(s));
    core.on('disconnected', (s) => events.push(s));
    core.openSession('d', 'mqtt', 'c-dev');
    core.openSession('d/m', 'mqtt', 'c-mod-1');
    core.openSession('d/m', 'mqtt-ws', 'c-mod-2');
    expect(events).toEqual([
      { deviceId: 'd', protocol: 'mqtt', connectionId: 'c-dev' },
      { deviceId: 'd', moduleId: 'm', protocol: 'mqtt', connectionId: 'c-mod-1' },
      { deviceId: 'd', moduleId: 'm', protocol: 'mqtt', connectionId: 'c-mod-1', reason: 'a newer connection for this device was opened' },
      { deviceId: 'd', moduleId: 'm', protocol: 'mqtt-ws', connectionId: 'c-mod-2' },
    ]);
    expect(core.stats().connectedIdentities).toEqual([
      { deviceId: 'd', protocol: 'mqtt', connectionId: 'c-dev' },
      { deviceId: 'd', moduleId: 'm', protocol: 'mqtt-ws', connectionId: 'c-mod-2' },
    ]);
  });

  it('reports a refusal for a module identity with its device and module apart', () => {
    const refused: unknown[] = [];
    core.on('refused', (e) => refused.push(e));
    core.logRefusal({ deviceId: 'd/m', protocol: 'amqp', what: 'attach', why: 'because' });
    expect(refused).toEqual([{ deviceId: 'd', moduleId: 'm', protocol: 'amqp', what: 'attach', why: 'because' }]);
  });
});

describe('module twins, methods and telemetry', () => {
  it('keeps the module twin apart and pushes its desired changes to the module\'s sessions only', () => {
    const seen: string[] = [];
    core.openSession('d', 'mqtt', 'c-dev').setDesiredReceiver({ desiredChanged: (p) => seen.push(`device ${JSON.stringify(p)}`) });
    core.openSession('d/m', 'mqtt', 'c-mod').setDesiredReceiver({ desiredChanged: (p) => seen.push(`module ${JSON.stringify(p)}`) });
    expect(core.patchReported('d/m', { fw: '1' })).toBe(2);
    expect(core.getTwin('d').reported).toEqual({ $version: 1 });
    const before = core.readModuleTwin('d', 'm');
    expect(before).toMatchObject({ deviceId: 'd', moduleId: 'm', reported: { fw: '1', $version: 2 } });
    const after = core.updateModuleDesired('d', 'm', { rate: 2 }, before.etag);
    expect(after.desired).toEqual({ rate: 2, $version: 2 });
    expect(kind(() => core.updateModuleDesired('d', 'm', { rate: 3 }, before.etag))).toBe('PreconditionFailed');
    expect(seen).toEqual(['module {"rate":2,"$version":2}']);
    expect(kind(() => core.readModuleTwin('d', 'ghost'))).toBe('ModuleNotFound');
  });

  it('invokes a module\'s method on the module\'s session; the device\'s receiver never sees it', async () => {
    const calls: string[] = [];
    core.openSession('d', 'amqp', 'c-dev').setMethodReceiver({ invoke: (r) => calls.push(`device ${r.methodName}`) });
    await expect(core.invokeModuleMethod('d', 'm', { methodName: 'ping' })).rejects.toMatchObject({ kind: 'DeviceNotOnline', message: expect.stringContaining("Module 'm' of device 'd' is not connected") });
    core.openSession('d/m', 'amqp', 'c-mod').setMethodReceiver({
      invoke: (r) => {
        calls.push(`module ${r.methodName}`);
        queueMicrotask(() => core.methodResponse('d/m', r.requestId, { status: 201, payload: { ok: true } }));
      },
    });
    await expect(core.invokeModuleMethod('d', 'm', { methodName: 'ping', payload: 1 })).resolves.toEqual({ status: 201, payload: { ok: true } });
    expect(calls).toEqual(['module ping']);
    await expect(core.invokeModuleMethod('d', 'ghost', { methodName: 'ping' })).rejects.toMatchObject({ kind: 'ModuleNotFound' });
    expect(core.counters('d/m').methodCalls).toBe(2);
    expect(core.counters('d').methodCalls).toBe(0);
  });

  it('records module telemetry with the module id, filters on it, and refuses C2D to a module', () => {
    core.acceptTelemetry('d', 'mqtt', { body: Buffer.from('dev'), properties: {}, systemProperties: {} });
    core.acceptTelemetry('d/m', 'amqp', { body: Buffer.from('mod'), properties: {}, systemProperties: {} });
    expect(core.telemetry({ deviceId: 'd' }).map((r) => [r.moduleId, r.body.toString()])).toEqual([[undefined, 'dev'], ['m', 'mod']]);
    expect(core.telemetry({ deviceId: 'd', moduleId: 'm' })).toHaveLength(1);
    expect(core.counters('d/m').telemetryReceived).toBe(1);
    expect(() => core.sendC2D('d/m', { body: Buffer.from('x') })).toThrow(/no cloud-to-device messages for module identities/);
    expect(kind(() => core.pollC2D('d/m'))).toBe('DeviceNotFound');
  });
});

describe('module persistence', () => {
  it('keeps modules, their keys and twins across a restart on the same state dir', () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'switchyard-modules-core-'));
    dirs.push(stateDir);
    const firstStore = openHubStore({ stateDir });
    const first = createHubCore({ hostName: HOST, store: firstStore, logger: createMemoryLogger() });
    first.createDevice('p');
    const created = first.createModule('p', 'keep');
    first.patchReported('p/keep', { kept: true });
    first.close();
    firstStore.close();
    const store = openHubStore({ stateDir });
    const second = createHubCore({ hostName: HOST, store, logger: createMemoryLogger() });
    expect(second.getModule('p', 'keep')).toEqual(created);
    expect(second.readModuleTwin('p', 'keep').reported).toMatchObject({ kept: true });
    expect(second.authenticateSas('p/keep', createSasToken(`${HOST}/devices/p/modules/keep`, keyOf(created), inAnHour()))).toMatchObject({ ok: true });
    second.close();
    store.close();
  });
});
