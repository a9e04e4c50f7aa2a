// A device that boots while its hub cannot be reached (the hub's `refuse` fault cuts every new
// connection of the device as soon as it names itself): with waitForConnection: false and an
// outbox directory, connect() returns the client at once, the sends made meanwhile are queued on
// disk, and all of them arrive in order once the hub lets the device in. A refusal no retry can
// cure (an unknown device) surfaces as an 'error' event and the `disconnected` state. The waits
// are for the client's events and the hub's telemetry, never for a length of time.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import type { Protocol } from '@switchyard/profile';
import type { SwitchyardError } from '@switchyard/errors';
import { connect, type DeviceClient, type StateChange } from '../src/index.ts';
import { waitFor } from '../../../test/support/waits.ts';

let hub: LocalHub;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-offline-boot-'));
const clients: DeviceClient[] = [];
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

let serial = 0;
async function boot(protocol: Protocol, deviceId: string): Promise<DeviceClient> {
  const { client } = await connect({
    connectionString: hub.deviceConnectionString(deviceId, { protocol }),
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    profile: { features: ['telemetry'] },
    forceProtocol: protocol,
    connectTimeoutMs: 5_000,
    outbox: { dir: join(dir, `${deviceId}`) },
    waitForConnection: false,
  });
  clients.push(client as DeviceClient);
  return client as DeviceClient;
}

function nextState(client: DeviceClient, to: StateChange['to']): Promise<StateChange> {
  return new Promise((resolve) => {
    const listener = (change: StateChange): void => {
      if (change.to !== to) return;
      client.off('state', listener);
      resolve(change);
    };
    client.on('state', listener);
  });
}

describe.each(['mqtt', 'amqp', 'mqtt-ws', 'amqp-ws'] as const)('booting offline over %s', (protocol) => {
  it('queues 20 sends while the hub refuses the device; all arrive in order once it is let in', async () => {
    const deviceId = `offline-${protocol}-${++serial}`;
    hub.createDevice(deviceId);
    hub.faults.network(deviceId, { kind: 'refuse', seconds: 300 });
    const client = await boot(protocol, deviceId);
    client.on('error', () => undefined);
    expect(client.state).toBe('connecting');
    const offline = nextState(client, 'reconnecting');
    const bodies = Array.from({ length: 20 }, (_, i) => `boot-${i}`);
    for (const body of bodies) await client.sendEvent(body, { until: 'queued' });
    // The hub refused at least one attempt, so the messages were queued while offline.
    expect((await offline).error).toMatchObject({ retryable: true });
    expect(client.outbox!.depth).toBe(20);
    expect(hub.telemetry({ deviceId })).toHaveLength(0);

    const connected = nextState(client, 'connected');
    hub.faults.clear(deviceId);
    await connected;
    await client.outbox!.drain();
    const received = await waitFor('20 messages at the hub', () => {
      const records = hub.telemetry({ deviceId });
      return records.length >= 20 ? records : undefined;
    });
    expect(received.sort((a, b) => a.sequenceNumber - b.sequenceNumber).map((r) => r.body.toString())).toEqual(bodies);
    await client.close();
  }, 30_000);
});

describe('booting offline, a refusal no retry cures', () => {
  it('an unknown device: connect() returns, then an error event and state disconnected', async () => {
    const deviceId = `offline-unknown-${++serial}`;
    // Removed from the hub before it boots: the hub refuses its credentials.
    hub.createDevice(deviceId);
    const connectionString = hub.deviceConnectionString(deviceId, { protocol: 'mqtt' });
    hub.removeDevice(deviceId);
    const { client } = await connect({
      connectionString,
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      profile: { features: ['telemetry'] },
      forceProtocol: 'mqtt',
      outbox: { dir: join(dir, deviceId) },
      waitForConnection: false,
    });
    clients.push(client as DeviceClient);
    const error = new Promise<SwitchyardError>((resolve) => client.once('error', resolve));
    const down = await nextState(client as DeviceClient, 'disconnected');
    expect(down.error?.retryable).toBe(false);
    expect((await error).code).toBe(down.error?.code);
    // What the app sends is still kept for a start with good credentials.
    await expect(client.sendEvent('kept', { until: 'queued' })).resolves.toBeUndefined();
    await client.close();
  }, 20_000);

  it('bad configuration found before any network still rejects connect()', async () => {
    hub.createDevice('offline-config');
    const connectionString = hub.deviceConnectionString('offline-config', { protocol: 'mqtt' });
    await expect(
      connect({ connectionString, ca: hub.ca, forceProtocol: 'mqtt', waitForConnection: false }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'waitForConnection' } });
    await expect(
      connect({ connectionString, ca: hub.ca, outbox: {}, fallback: true, waitForConnection: false }),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'waitForConnection' } });
  });
});
