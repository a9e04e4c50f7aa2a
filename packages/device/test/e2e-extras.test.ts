// X.509 devices, adaptAzureClient over an SDK Client built elsewhere, deadlines and abort, and
// file upload (in a child process, because the SDK's blob client trusts only NODE_EXTRA_CA_CERTS).
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import azureDevice from 'azure-iot-device';
import azureMqtt from 'azure-iot-device-mqtt';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { RedirectAgent, adaptAzureClient, connect, guard } from '../src/internal.ts';
import { waitFor } from '../../../test/support/waits.ts';

let hub: LocalHub;
let stateDir: string;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  stateDir = await mkdtemp(join(tmpdir(), 'sy-extras-'));
  hub = await startLocalHub({ stateDir, logger: silentLogger, devices: ['adapted', 'uploader'] });
});

afterAll(async () => {
  for (const close of closers) await close().catch(() => undefined);
  await hub?.close();
  await rm(stateDir, { recursive: true, force: true });
});

describe('deadlines and abort (guard)', () => {
  it('fails an operation the SDK never settles with TIMEOUT', async () => {
    await expect(guard('amqp', 'updateReported', () => new Promise<never>(() => undefined), { defaultTimeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT', details: { protocol: 'amqp', operation: 'updateReported' } });
  });

  it('fails with ABORTED when the signal fires first, or was already aborted', async () => {
    const controller = new AbortController();
    const pending = guard('mqtt', 'getTwin', () => new Promise<never>(() => undefined), { defaultTimeoutMs: 10_000, signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(guard('mqtt', 'getTwin', () => Promise.resolve(1), { defaultTimeoutMs: 10, signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
  });
});

describe.each(['mqtt', 'amqp', 'https'] as const)('X.509 device over %s', (protocol) => {
  it('connects with certificate and key and sends', async () => {
    const id = `x509-${protocol}`;
    const cert = hub.issueDeviceCertificate(id);
    hub.createDevice(id, { authentication: { type: 'x509-thumbprint', primaryThumbprint: cert.thumbprint } });
    const { client } = await connect({
      connectionString: `HostName=${hub.hostName};DeviceId=${id};x509=true`,
      cert: cert.cert,
      key: cert.key,
      ca: hub.ca,
      profile: { auth: 'x509-thumbprint', protocols: [protocol] },
      endpoint: { host: hub.address, ports: hub.ports },
    });
    closers.push(() => client.close());
    await client.sendEvent('signed by a certificate');
    await waitFor('x509 telemetry', () => hub.telemetry({ deviceId: id }).length === 1 || undefined);
    await client.close();
  });
});

describe('adaptAzureClient', () => {
  it('wraps an SDK Client built elsewhere in the same interface', async () => {
    const azure = azureDevice.Client.fromConnectionString(hub.deviceConnectionString('adapted', { protocol: 'mqtt' }), azureMqtt.Mqtt);
    await azure.setOptions({ ca: hub.ca });
    await azure.open();
    const client = adaptAzureClient(azure, { protocol: 'mqtt', deviceId: 'adapted' });
    closers.push(() => client.close());
    await client.sendEvent({ body: 'adapted', properties: { via: 'adapter' } });
    await waitFor('adapted telemetry', () => hub.telemetry({ deviceId: 'adapted' }).find((r) => r.properties.via === 'adapter'));
    await expect(client.sendEventBatch([])).resolves.toBeUndefined();
    await client.close();
    await expect(client.sendEvent('after close')).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
  });

  it('refuses something that is not a Client', () => {
    expect(() => adaptAzureClient({}, { protocol: 'amqp' })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });
});

describe('transport factory at run time', () => {
  it.each([
    ['mqtt', ['azure-iot-device-mqtt', 'azure-iot-mqtt-base']],
    ['https', ['azure-iot-device-http']],
  ] as const)('a client on %s loads only its own transport modules', async (protocol, expected) => {
    const script = fileURLToPath(new URL('./modules-child.ts', import.meta.url));
    const args = ['--import', 'tsx', script, hub.deviceConnectionString('adapted', { protocol }), hub.ca, hub.address, JSON.stringify(hub.ports), protocol];
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, args, { timeout: 30_000, cwd: fileURLToPath(new URL('..', import.meta.url)) }, (err, stdout, stderr) => (err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout)));
    });
    expect(JSON.parse(output.trim().split('\n').pop()!)).toEqual(expected);
  }, 40_000);
});

describe('file upload', () => {
  it('uploads a blob through the hub (child process with NODE_EXTRA_CA_CERTS)', async () => {
    expect(hub.caPath).toBeDefined();
    const script = fileURLToPath(new URL('./upload-child.ts', import.meta.url));
    const args = ['--import', 'tsx', script, hub.deviceConnectionString('uploader', { protocol: 'mqtt' }), hub.address, String(hub.ports.https), String(hub.ports.mqtt)];
    const output = await new Promise<string>((resolve, reject) => {
      execFile(process.execPath, args, { env: { ...process.env, NODE_EXTRA_CA_CERTS: hub.caPath! }, timeout: 30_000, cwd: fileURLToPath(new URL('..', import.meta.url)) }, (err, stdout, stderr) =>
        err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(stdout),
      );
    });
    expect(output.trim()).toBe('uploaded');
  }, 40_000);

  it('exports the redirect agent used for the 443-bound transports', () => {
    const agent = new RedirectAgent({ host: '127.0.0.1', port: 1 });
    expect(agent.target).toEqual({ host: '127.0.0.1', port: 1 });
    agent.destroy();
  });
});
