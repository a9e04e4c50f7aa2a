// Module identities in the hub's store: records under their device, twins and MQTT subscriptions
// keyed by `<deviceId>/<moduleId>`, gone with the module or the device, and kept across restarts.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModuleRecord } from '../src/core/module-types.ts';
import type { DeviceRecord } from '../src/core/types.ts';
import { JOURNAL_FILE, openHubStore, openJournalStore } from '../src/store/index.ts';
import { frame } from '../src/store/journal.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-modules-'));
  dirs.push(dir);
  return dir;
}

const device = (deviceId: string): DeviceRecord => ({
  deviceId,
  authentication: { type: 'sas', primaryKey: 'p', secondaryKey: 's' },
  status: 'enabled',
  etag: 'e1',
  generationId: `g-${deviceId}`,
  createdAt: new Date(0).toISOString(),
});

const module = (deviceId: string, moduleId: string): ModuleRecord => ({
  deviceId,
  moduleId,
  authentication: { type: 'sas', primaryKey: `${moduleId}-p`, secondaryKey: `${moduleId}-s` },
  managedBy: '',
  etag: 'm1',
  generationId: `g-${moduleId}`,
  createdAt: new Date(0).toISOString(),
});

const twin = (n: number) => ({ desired: { $version: 1 }, reported: { $version: n, n }, version: n });

describe('module identities in the store', () => {
  it('keeps a module apart from its device: record, twin and subscriptions under <deviceId>/<moduleId>', () => {
    const store = openHubStore({ inMemory: true });
    store.putDevice(device('d'));
    store.putModule(module('d', 'm'));
    store.putTwin('d', twin(2));
    store.putTwin('d/m', twin(5));
    store.setSubscriptions('d/m', ['$iothub/twin/res/#']);
    expect(store.loadModules()).toEqual([module('d', 'm')]);
    expect(store.loadTwin('d')?.reported).toEqual({ $version: 2, n: 2 });
    expect(store.loadTwin('d/m')?.reported).toEqual({ $version: 5, n: 5 });
    expect(store.getSubscriptions('d/m')).toEqual(['$iothub/twin/res/#']);
    expect(store.getSubscriptions('d')).toEqual([]);
    store.close();
  });

  it('refuses a module of an unknown device and a twin of an unknown module', () => {
    const store = openHubStore({ inMemory: true });
    expect(() => store.putModule(module('ghost', 'm'))).toThrow(/not in the registry/);
    store.putDevice(device('d'));
    expect(() => store.putTwin('d/nope', twin(1))).toThrow(/module d\/nope/);
    expect(() => store.setSubscriptions('d/nope', ['x'])).toThrow(/not in the registry/);
    store.close();
  });

  it('drops a module with its twin and subscriptions, and every module of a removed device', () => {
    const store = openHubStore({ inMemory: true });
    store.putDevice(device('d'));
    store.putDevice(device('other'));
    for (const id of ['a', 'b']) {
      store.putModule(module('d', id));
      store.putTwin(`d/${id}`, twin(3));
      store.setSubscriptions(`d/${id}`, ['$iothub/methods/POST/#']);
    }
    store.putModule(module('other', 'a'));
    store.deleteModule('d', 'a');
    expect(store.loadModules().map((m) => `${m.deviceId}/${m.moduleId}`)).toEqual(['d/b', 'other/a']);
    expect(store.loadTwin('d/a')).toBeUndefined();
    expect(store.getSubscriptions('d/a')).toEqual([]);
    store.deleteDevice('d');
    expect(store.loadModules().map((m) => `${m.deviceId}/${m.moduleId}`)).toEqual(['other/a']);
    expect(store.loadTwin('d/b')).toBeUndefined();
    expect(store.getSubscriptions('d/b')).toEqual([]);
    store.close();
  });

  it.each([
    ['replayed record by record', 1024 * 1024],
    ['compacted into a snapshot', 1],
  ])('keeps modules and their twins across a restart, %s', (_how, compactAtBytes) => {
    const dir = tempDir();
    const first = openJournalStore(dir, { compactAtBytes });
    first.putDevice(device('d'));
    first.putModule(module('d', 'm'));
    first.putTwin('d/m', twin(7));
    first.close();
    const second = openHubStore({ stateDir: dir });
    expect(second.loadModules()).toEqual([module('d', 'm')]);
    expect(second.loadTwin('d/m')).toEqual(twin(7));
    second.close();
  });

  it('reads a format-1 journal (from before modules) as a registry without modules', () => {
    const dir = tempDir();
    const snapshot = { op: 'snapshot', format: 1, devices: [device('old')], twins: [['old', twin(4)]], c2d: [], subscriptions: [], policies: [] };
    writeFileSync(join(dir, JOURNAL_FILE), frame(JSON.stringify(snapshot)));
    const store = openHubStore({ stateDir: dir });
    expect(store.loadDevices().map((d) => d.deviceId)).toEqual(['old']);
    expect(store.loadModules()).toEqual([]);
    expect(store.loadTwin('old')).toEqual(twin(4));
    store.close();
  });
});
