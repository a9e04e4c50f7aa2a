// The local hub's registry and twins as Microsoft's service SDK (azure-iothub, unchanged) uses
// them, over HTTPS with TLS verified against the hub's CA: create with hub-generated keys,
// update keeping statusReason, etags, tags and $metadata, queries with paging, bulk operations,
// statistics, and a 501 naming what the local hub does not do.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import iothub from 'azure-iothub';
import type { Client } from 'azure-iot-device';
import { silentLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { azureClient } from './support/azure-clients.ts';

const { Registry } = iothub;
type Registry = InstanceType<typeof Registry>;
type SdkError = Error & { responseBody?: string; response?: { statusCode?: number } };

let hub: LocalHub;
let registry: Registry;
const clients: Client[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
  registry = Registry.fromConnectionString(hub.serviceConnectionString);
  // Registry has no public setOptions; its REST client's is how the SDK's HTTP layer takes a CA
  // (common-http passes `ca` to https.request). The agent only redirects the TCP connection to
  // the hub's port: TLS still verifies the certificate against HostName.
  (registry as unknown as { _restApiClient: { setOptions(o: unknown): void } })._restApiClient.setOptions({ ca: hub.ca, http: { agent: hub.redirectAgent() } });
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await hub?.close();
});

async function failure(promise: Promise<unknown>): Promise<SdkError> {
  try {
    await promise;
  } catch (error) {
    return error as SdkError;
  }
  throw new Error('expected the call to fail');
}

async function report(deviceId: string, patch: Record<string, unknown>): Promise<void> {
  const auth = hub.getDevice(deviceId)?.authentication;
  if (auth?.type !== 'sas') throw new Error(`${deviceId} is not a SAS device`);
  const client = await azureClient(hub, 'mqtt', deviceId, auth.primaryKey);
  clients.push(client);
  await client.open();
  const twin = await client.getTwin();
  await new Promise<void>((resolve, reject) => twin.properties.reported.update(patch, (err?: Error) => (err ? reject(err) : resolve())));
}

describe('azure-iothub Registry: devices', () => {
  it('create({ deviceId }) sends empty keys; the hub generates them, and the device can connect with them', async () => {
    const { responseBody: device } = await registry.create({ deviceId: 'sdk-create' });
    const keys = device.authentication?.symmetricKey;
    expect(keys?.primaryKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(keys?.secondaryKey).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(keys?.primaryKey).not.toBe(keys?.secondaryKey);
    expect(device).toMatchObject({ deviceId: 'sdk-create', status: 'enabled', connectionState: 'Disconnected' });
    await report('sdk-create', { booted: true });
    expect(hub.readTwin('sdk-create').reported).toMatchObject({ booted: true });
    const again = await failure(registry.create({ deviceId: 'sdk-create' }));
    expect(again.name).toBe('DeviceAlreadyExistsError');
  });

  it('update({ deviceId, status, statusReason }) keeps the reason; get and list return it', async () => {
    await registry.create({ deviceId: 'sdk-update' });
    const { responseBody: updated } = await registry.update({ deviceId: 'sdk-update', status: 'disabled', statusReason: 'maintenance window' });
    expect(updated).toMatchObject({ status: 'disabled', statusReason: 'maintenance window' });
    expect(updated.statusUpdatedTime).not.toBe('0001-01-01T00:00:00Z');
    const { responseBody: read } = await registry.get('sdk-update');
    expect(read).toMatchObject({ status: 'disabled', statusReason: 'maintenance window', etag: updated.etag });
    // Keys survive an update that names none.
    const stored = hub.getDevice('sdk-update')?.authentication;
    expect(stored?.type).toBe('sas');
    expect(read.authentication?.symmetricKey?.primaryKey).toBe(stored?.type === 'sas' ? stored.primaryKey : undefined);
    const { responseBody: list } = await registry.list();
    expect(list.find((d) => d.deviceId === 'sdk-update')).toMatchObject({ statusReason: 'maintenance window' });
    await registry.delete('sdk-update');
    expect((await failure(registry.get('sdk-update'))).name).toBe('DeviceNotFoundError');
  });
});

describe('azure-iothub Registry: credentials', () => {
  function configured(r: Registry): Registry {
    (r as unknown as { _restApiClient: { setOptions(o: unknown): void } })._restApiClient.setOptions({ ca: hub.ca, http: { agent: hub.redirectAgent() } });
    return r;
  }

  it('fromSharedAccessSignature works with a service token; fromTokenCredential (AAD) is refused 401', async () => {
    const bySas = configured(Registry.fromSharedAccessSignature(hub.serviceToken()));
    const { responseBody: devices } = await bySas.list();
    expect(Array.isArray(devices)).toBe(true);
    const byAad = configured(Registry.fromTokenCredential(hub.hostName, { getToken: async () => ({ token: 'aad-token', expiresOnTimestamp: Date.now() + 3_600_000 }) }));
    const refused = await failure(byAad.list());
    expect(refused.response?.statusCode).toBe(401);
    expect(refused.name).toBe('UnauthorizedError');
  });
});

describe('azure-iothub Registry: twins', () => {
  it('updateTwin with tags and desired properties, honouring the etag; $metadata for both sections', async () => {
    await registry.create({ deviceId: 'sdk-twin' });
    const { responseBody: twin } = await registry.getTwin('sdk-twin');
    expect(twin.tags).toEqual({});
    const { responseBody: updated } = await registry.updateTwin('sdk-twin', { tags: { site: { building: 43 } }, properties: { desired: { interval: 30 } } }, twin.etag);
    expect(updated.tags).toEqual({ site: { building: 43 } });
    const desired = updated.properties.desired as Record<string, unknown> & { $metadata: Record<string, { $lastUpdated: string; $lastUpdatedVersion?: number }> };
    expect(desired).toMatchObject({ interval: 30, $version: 2 });
    expect(desired.$metadata.$lastUpdatedVersion).toBe(2);
    expect(desired.$metadata.interval).toMatchObject({ $lastUpdatedVersion: 2, $lastUpdated: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) });

    // The SDK's Twin.update sends the etag it holds; a stale one is refused.
    const stale = await failure(registry.updateTwin('sdk-twin', { tags: { site: null } }, twin.etag));
    // azure-iothub names a 412 InvalidEtagError.
    expect(stale.name).toBe('InvalidEtagError');
    expect(stale.response?.statusCode).toBe(412);
    const { responseBody: current } = await registry.getTwin('sdk-twin');
    await current.update({ tags: { site: { floor: 2 } } });
    expect(current.tags).toEqual({ site: { building: 43, floor: 2 } });
    // Tags alone bump the twin, not the desired $version.
    expect((current.properties.desired as { $version: number }).$version).toBe(2);

    await report('sdk-twin', { firmware: { version: '1.2' } });
    const { responseBody: reported } = await registry.getTwin('sdk-twin');
    const meta = (reported.properties.reported as { $metadata: Record<string, Record<string, unknown>> }).$metadata;
    expect(meta.firmware).toMatchObject({ $lastUpdated: expect.any(String), version: { $lastUpdated: expect.any(String) } });
    // Reported metadata carries no $lastUpdatedVersion, as in IoT Hub.
    expect(meta.firmware).not.toHaveProperty('$lastUpdatedVersion');
  });
});

describe('azure-iothub Registry: queries', () => {
  beforeAll(async () => {
    for (const [id, x, z] of [['q-1', 'y', 5], ['q-2', 'y', 2], ['q-3', 'w', 9], ['q-4', 'y', 7]] as const) {
      await registry.create({ deviceId: id });
      const { responseBody: twin } = await registry.getTwin(id);
      await twin.update({ tags: { x } });
      await report(id, { z });
    }
  });

  it("createQuery(…WHERE tags.x = 'y' AND properties.reported.z > 3, 1) pages through with continuation tokens", async () => {
    const query = registry.createQuery("SELECT * FROM devices WHERE tags.x = 'y' AND properties.reported.z > 3", 1);
    const seen: string[] = [];
    for (let page = 0; page < 10 && query.hasMoreResults; page++) {
      const { result } = await query.nextAsTwin();
      expect(result.length).toBeLessThanOrEqual(1);
      seen.push(...result.map((t) => t.deviceId));
      if (result.length > 0) expect(typeof result[0]!.update).toBe('function');
    }
    expect(seen.sort()).toEqual(['q-1', 'q-4']);
    expect(query.hasMoreResults).toBe(false);
  });

  it('SELECT COUNT() AS n counts; a malformed query is 400 and an unsupported one 501', async () => {
    const { result } = await registry.createQuery("SELECT COUNT() AS n FROM devices WHERE tags.x = 'y'").next();
    expect(result).toEqual([{ n: 3 }]);
    const invalid = await failure(registry.createQuery('SELECT * FROM devices WHERE').next());
    expect(invalid.name).toBe('ArgumentError');
    const unsupported = await failure(registry.createQuery('SELECT * FROM devices.modules').next());
    expect(unsupported.response?.statusCode).toBe(501);
    expect(unsupported.responseBody).toContain('FROM devices.modules');
  });
});

describe('azure-iothub Registry: bulk and statistics', () => {
  it('addDevices, updateDevices (etag or forced) and removeDevices, with per-device errors', async () => {
    const added = await registry.addDevices([{ deviceId: 'bulk-1' }, { deviceId: 'bulk-2' }, { deviceId: 'bulk-3', status: 'disabled' }]);
    expect(added.responseBody).toEqual({ isSuccessful: true, errors: [], warnings: [] });
    expect(hub.getDevice('bulk-3')?.status).toBe('disabled');
    const bulk1 = hub.getDevice('bulk-1')!;
    if (bulk1.authentication.type !== 'sas') throw new Error('expected SAS');
    expect(bulk1.authentication.primaryKey).not.toBe('');

    const duplicate = await failure(registry.addDevices([{ deviceId: 'bulk-1' }, { deviceId: 'bulk-4' }]));
    expect(duplicate.response?.statusCode).toBe(400);
    expect(JSON.parse(duplicate.responseBody!)).toMatchObject({ isSuccessful: false, errors: [{ deviceId: 'bulk-1', errorCode: 'DeviceAlreadyExists' }] });
    expect(hub.getDevice('bulk-4')).toBeDefined();

    const stale = await failure(registry.updateDevices([{ deviceId: 'bulk-1', status: 'disabled', etag: 'not-the-etag' } as never], false));
    expect(JSON.parse(stale.responseBody!)).toMatchObject({ errors: [{ deviceId: 'bulk-1', errorCode: 'PreconditionFailed' }] });
    expect(hub.getDevice('bulk-1')?.status).toBe('enabled');
    const forced = await registry.updateDevices([{ deviceId: 'bulk-1', status: 'disabled', statusReason: 'bulk' }], true);
    expect(forced.responseBody.isSuccessful).toBe(true);
    expect(hub.getDevice('bulk-1')).toMatchObject({ status: 'disabled', statusReason: 'bulk' });
    // Keys were not named, so they stay.
    expect(hub.getDevice('bulk-1')?.authentication).toEqual(bulk1.authentication);

    const removed = await registry.removeDevices([{ deviceId: 'bulk-1' }, { deviceId: 'bulk-2' }, { deviceId: 'bulk-4' }], true);
    expect(removed.responseBody.isSuccessful).toBe(true);
    expect(['bulk-1', 'bulk-2', 'bulk-4'].map((id) => hub.getDevice(id))).toEqual([undefined, undefined, undefined]);
  });

  it('getRegistryStatistics counts devices by status', async () => {
    const { responseBody: stats } = await registry.getRegistryStatistics();
    const devices = hub.listDevices();
    expect(stats).toEqual({
      totalDeviceCount: devices.length,
      enabledDeviceCount: devices.filter((d) => d.status === 'enabled').length,
      disabledDeviceCount: devices.filter((d) => d.status === 'disabled').length,
    });
    expect(stats.disabledDeviceCount).toBeGreaterThan(0);
  });

  it('answers what it does not do with 501 naming the operation, in IoT Hub\'s error body', async () => {
    const error = await failure(registry.getConfigurations());
    expect(error.response?.statusCode).toBe(501);
    expect(JSON.parse(error.responseBody!)).toMatchObject({ Message: expect.stringMatching(/^ErrorCode:NotImplemented;automatic device configurations/), errorCode: 501000 });
    const jobs = await failure(registry.listJobs());
    expect(jobs.responseBody).toContain('jobs');
  });
});
