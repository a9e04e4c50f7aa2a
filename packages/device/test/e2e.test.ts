// What only connect() does, against the local hub over real TLS (the hub CA passed as `ca`): its
// errors at connect and the development-mode warning. The behaviour every client shares is the
// one suite in test/behaviour-connect.test.ts.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { isSwitchyardError } from '@switchyard/errors';
import type { Feature, ProfileDefinition, Protocol } from '@switchyard/profile';
import { connect, type DeviceClient, type PollEvent } from '../src/index.ts';
import { waitFor } from '../../../test/support/waits.ts';

const canRejectAbandon = (p: Protocol): boolean => p === 'amqp' || p === 'amqp-ws' || p === 'https';

function profileFor(protocol: Protocol): ProfileDefinition {
  if (protocol === 'https') {
    // Development mode so the suite can poll every second; production is covered below.
    return { features: ['telemetry', 'batch', 'c2d', 'c2d-reject-abandon'], environment: 'development', pollIntervalSeconds: 1 };
  }
  const features: Feature[] = ['telemetry', 'c2d', 'twin', 'methods'];
  if (canRejectAbandon(protocol)) features.push('c2d-reject-abandon');
  return { features };
}

let hub: LocalHub;
const clients: DeviceClient[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});

afterAll(async () => {
  for (const c of clients) await c.close().catch(() => undefined);
  await hub?.close();
});

async function device(protocol: Protocol, extra: Record<string, unknown> = {}): Promise<{ client: DeviceClient; id: string }> {
  const id = `${protocol}-${randomUUID().slice(0, 8)}`;
  hub.createDevice(id);
  const { client, decision } = await connect({
    connectionString: hub.deviceConnectionString(id, { protocol }),
    ca: hub.ca,
    profile: profileFor(protocol),
    forceProtocol: protocol,
    endpoint: { host: hub.address, ports: hub.ports },
    connectTimeoutMs: 10_000,
    operationTimeoutMs: 10_000,
    ...extra,
  });
  expect(decision.protocol).toBe(protocol);
  clients.push(client as DeviceClient);
  return { client: client as DeviceClient, id };
}

describe('https through connect(), development mode', () => {
  it('warns that it polls faster than IoT Hub asks of production devices', async () => {
    const { client } = await device('https');
    const warnings: string[] = [];
    client.on('warning', (w) => warnings.push(w));
    const polls: PollEvent[] = [];
    client.on('poll', (e) => polls.push(e));
    client.on('message', (m) => void m.complete());
    await waitFor('a poll', () => polls.length >= 1 || undefined, 10_000);
    expect(warnings.join()).toMatch(/development/);
  });
});

describe('errors at connect', () => {
  it('reports wrong credentials as AUTH_FAILED', async () => {
    const id = `auth-${randomUUID().slice(0, 8)}`;
    hub.createDevice(id);
    const cs = hub.deviceConnectionString(id, { protocol: 'mqtt' }).replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 7).toString('base64')}`);
    const error = await connect({ connectionString: cs, ca: hub.ca, profile: { protocols: ['mqtt', 'mqtt-ws'] }, endpoint: { host: hub.address, ports: hub.ports }, fallback: true }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSwitchyardError(error, 'AUTH_FAILED')).toBe(true);
    expect(String((error as Error).message)).not.toMatch(/SharedAccessKey=|sig=[A-Za-z0-9%]/);
  });

  it('fails TLS verification without the hub CA', async () => {
    const id = `tls-${randomUUID().slice(0, 8)}`;
    hub.createDevice(id);
    const error = await connect({ connectionString: hub.deviceConnectionString(id, { protocol: 'mqtt' }), profile: { protocols: ['mqtt'] }, endpoint: { host: hub.address, ports: hub.ports } }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isSwitchyardError(error, 'CONNECT_FAILED')).toBe(true);
    expect((error as { details: { failure: string } }).details.failure).toBe('tls');
  });
});
