// With --standard-ports, azure-iothub needs no code at all: its own process, the printed service
// connection string, the hub's CA trusted through NODE_EXTRA_CA_CERTS (verification on). Binding
// 443 needs root (or CAP_NET_BIND_SERVICE), so the test runs only then.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { Client, type Message } from 'azure-iot-device';
import { Mqtt } from 'azure-iot-device-mqtt';
import { createMemoryLogger, startLocalHub, type LocalHub } from '../src/index.ts';
import { within } from './support/service-client.ts';

const canBindPrivilegedPorts = process.getuid?.() === 0;
// A loopback address of its own (another range than hub-standard-ports'), so the fixed ports do
// not collide with another suite's hub.
const address = `127.0.1.${10 + (process.pid % 200)}`;
const fixture = fileURLToPath(new URL('./fixtures/service-child.ts', import.meta.url));
const stateDir = mkdtempSync(join(tmpdir(), 'hub-service-std-'));
let hub: LocalHub | undefined;
let device: Client | undefined;

afterAll(async () => {
  await device?.close().catch(() => undefined);
  await hub?.close();
  rmSync(stateDir, { recursive: true, force: true });
});

function runServiceChild(connectionString: string, transport: 'amqp' | 'amqp-ws', deviceId: string, caPath: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, connectionString, transport, deviceId], {
      env: { ...process.env, NODE_EXTRA_CA_CERTS: caPath },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { err += chunk.toString(); });
    child.on('error', reject);
    child.on('exit', () => {
      const line = out.trim().split('\n').at(-1) ?? '';
      try {
        resolve(JSON.parse(line) as Record<string, unknown>);
      } catch {
        reject(new Error(`service child printed no result: ${out} ${err.slice(-2000)}`));
      }
    });
  });
}

describe('azure-iothub on the standard ports', () => {
  it.skipIf(!canBindPrivilegedPorts)('sends C2D and invokes a method over Amqp and AmqpWs with nothing but the printed string and NODE_EXTRA_CA_CERTS (needs root: port 443)', async () => {
    hub = await startLocalHub({ standardPorts: true, address, stateDir, devices: ['std-svc-dev'], logger: createMemoryLogger() });
    const connectionString = hub.serviceConnectionString;
    expect(connectionString).toMatch(new RegExp(`^HostName=${address.replace(/\./g, '\\.')};SharedAccessKeyName=iothubowner;`));
    const caPath = hub.caPath;
    if (caPath === undefined) throw new Error('a hub with a state dir has a ca.pem');

    device = Client.fromConnectionString(hub.deviceConnectionString('std-svc-dev'), Mqtt);
    device.on('error', () => undefined);
    await within(device.setOptions({ ca: hub.ca }), 10_000, 'device setOptions');
    await within(device.open(), 10_000, 'device open');
    const received: string[] = [];
    device.on('message', (m: Message) => {
      received.push(String(m.messageId));
      void device?.complete(m);
    });
    device.onDeviceMethod('ping', (request, response) => void response.send(200, { pong: request.payload as unknown }));

    for (const transport of ['amqp', 'amqp-ws'] as const) {
      const result = await within(runServiceChild(connectionString, transport, 'std-svc-dev', caPath), 60_000, `service child ${transport}`);
      expect(result, transport).toEqual({ ok: true, method: { status: 200, payload: { pong: { from: transport } } } });
    }
    await within((async () => {
      while (received.length < 2) await new Promise((r) => setTimeout(r, 20));
    })(), 10_000, 'both C2D messages');
    expect(received.sort()).toEqual(['std-amqp', 'std-amqp-ws']);
  });
});
