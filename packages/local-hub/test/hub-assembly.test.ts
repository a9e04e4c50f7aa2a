import { request } from 'node:https';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import mqtt from 'mqtt';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { createMemoryLogger, createSasToken, startLocalHub, type LocalHub } from '../src/index.ts';

const dirs: string[] = [];
const hubs: LocalHub[] = [];
let hub: LocalHub;

beforeAll(async () => {
  hub = await startLocalHub({ devices: ['a', 'b'], logger: createMemoryLogger() });
  hubs.push(hub);
});

afterAll(async () => {
  await Promise.all(hubs.map((h) => h.close()));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms); });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function tlsHandshake(port: number, servername: string): Promise<boolean> {
  return within(10_000, `TLS to ${port}`, new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: hub.address, port, ca: hub.ca, servername }, () => {
      const ok = socket.authorized;
      socket.destroy();
      resolve(ok);
    });
    socket.once('error', reject);
  }));
}

function openWebSocket(target: LocalHub, protocol: string, path = '/$iothub/websocket'): Promise<string> {
  return within(10_000, `websocket ${protocol}`, new Promise((resolve) => {
    const ws = new WebSocket(`wss://${target.address}:${target.ports.https}${path}`, protocol, { ca: target.ca });
    ws.once('open', () => {
      const chosen = ws.protocol;
      ws.terminate();
      resolve(`open:${chosen}`);
    });
    ws.once('unexpected-response', (_req, res) => { ws.terminate(); resolve(`http:${res.statusCode ?? 0}`); });
    ws.once('error', (e) => resolve(`error:${e.message}`));
  }));
}

function keyOf(target: LocalHub, deviceId: string): string {
  const auth = target.getDevice(deviceId)?.authentication;
  if (auth?.type !== 'sas') throw new Error('expected a SAS device');
  return auth.primaryKey;
}

describe('listener assembly', () => {
  it('serves verified TLS on all three listeners for the hub name, localhost and the address', async () => {
    expect(hub.ports.mqtt).toBeGreaterThan(0);
    expect(new Set(Object.values(hub.ports)).size).toBe(3);
    for (const port of Object.values(hub.ports)) {
      expect(await tlsHandshake(port, hub.hostName)).toBe(true);
      expect(await tlsHandshake(port, 'localhost')).toBe(true);
    }
  });

  it('routes /$iothub/websocket by subprotocol and refuses other paths and subprotocols', async () => {
    expect(await openWebSocket(hub, 'mqtt')).toBe('open:mqtt');
    expect(await openWebSocket(hub, 'AMQPWSB10')).toBe('open:AMQPWSB10');
    expect(await openWebSocket(hub, 'mqtt', '/elsewhere')).toBe('http:404');
    expect(await openWebSocket(hub, 'stomp')).toMatch(/^error:/);
  });

  it('builds connection strings the Azure SDK understands', () => {
    const key = keyOf(hub, 'a');
    expect(hub.deviceConnectionString('a')).toBe(`HostName=${hub.hostName};GatewayHostName=${hub.address}:${hub.ports.mqtt};DeviceId=a;SharedAccessKey=${key}`);
    expect(hub.deviceConnectionString('a', { protocol: 'amqp' })).toContain(`GatewayHostName=${hub.address}:${hub.ports.amqp};`);
    expect(hub.deviceConnectionString('a', { protocol: 'https' })).toBe(`HostName=${hub.hostName};DeviceId=a;SharedAccessKey=${key}`);
    expect(hub.serviceConnectionString).toMatch(new RegExp(`^HostName=${hub.hostName};SharedAccessKeyName=iothubowner;SharedAccessKey=[A-Za-z0-9+/=]{44}$`));
    expect(() => hub.deviceConnectionString('nobody')).toThrow(expect.objectContaining({ code: 'DEVICE_NOT_FOUND' }));
  });

  it('the redirect agent reaches the HTTPS listener under the hub name, with the certificate checked', async () => {
    const agent = hub.redirectAgent();
    const status = await within(10_000, 'GET /local/stats', new Promise<number>((resolve, reject) => {
      const req = request({ host: hub.hostName, path: '/local/stats', agent, ca: hub.ca, headers: { authorization: hub.serviceToken() } }, (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
      });
      req.once('error', reject);
      req.end();
    }));
    expect(status).toBe(200);
    agent.destroy();
  });

  it('reports an MQTT device as connected, and close() ends its connection', async () => {
    const own = await startLocalHub({ devices: ['m'], logger: createMemoryLogger() });
    hubs.push(own);
    const connected = new Promise<string>((resolve) => own.once('connected', (s) => resolve(`${s.deviceId}/${s.protocol}`)));
    const client = await within(10_000, 'mqtt connect', mqtt.connectAsync(`mqtts://${own.address}:${own.ports.mqtt}`, {
      clientId: 'm',
      username: `${own.hostName}/m/?api-version=2021-04-12`,
      password: createSasToken(`${own.hostName}/devices/m`, keyOf(own, 'm'), Math.floor(Date.now() / 1000) + 3600),
      ca: own.ca,
      protocolVersion: 4,
      clean: false,
      reconnectPeriod: 0,
    }));
    expect(await within(5_000, 'connected event', connected)).toBe('m/mqtt');
    expect(own.stats().connectedIdentities).toEqual([expect.objectContaining({ deviceId: 'm', protocol: 'mqtt' })]);
    const telemetry = new Promise<string>((resolve) => own.once('telemetry', (r) => resolve(`${r.deviceId}:${r.body.toString()}:${r.properties['k'] ?? ''}`)));
    await within(10_000, 'publish', client.publishAsync('devices/m/messages/events/k=v', 'hello', { qos: 1 }));
    expect(await within(5_000, 'telemetry event', telemetry)).toBe('m:hello:v');
    const disconnected = new Promise<string>((resolve) => own.once('disconnected', (s) => resolve(s.reason)));
    const closed = new Promise<void>((resolve) => client.once('close', () => resolve()));
    await within(10_000, 'hub close', own.close());
    await within(10_000, 'client sees close', closed);
    expect(await within(5_000, 'disconnected event', disconnected)).toBe('hub closing');
    await own.close(); // idempotent
    client.end(true);
  });

  it('accepts a self-signed device certificate at the TLS layer and lets the core decide by thumbprint', async () => {
    const own = await startLocalHub({ logger: createMemoryLogger() });
    hubs.push(own);
    const good = own.issueDeviceCertificate('cam');
    const stranger = own.issueDeviceCertificate('cam');
    own.createDevice('cam', { authentication: { type: 'x509-thumbprint', primaryThumbprint: good.thumbprint } });
    const attempt = (cert: { cert: string; key: string }): Promise<string> =>
      within(10_000, 'mqtt x509 connect', mqtt.connectAsync(`mqtts://${own.address}:${own.ports.mqtt}`, {
        clientId: 'cam',
        username: `${own.hostName}/cam/?api-version=2021-04-12`,
        ca: own.ca,
        cert: cert.cert,
        key: cert.key,
        protocolVersion: 4,
        reconnectPeriod: 0,
      }).then(async (client) => { await client.endAsync(); return 'connected'; }, (e: Error) => `refused: ${e.message}`));
    expect(await attempt(good)).toBe('connected');
    expect(await attempt(stranger)).toMatch(/^refused/);
    expect(own.counters('cam').authFailures).toBe(1);
    await own.close();
  });

  it('restarts on the same state dir and ports with keys, CA and queued C2D intact', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'switchyard-hub-'));
    dirs.push(stateDir);
    const first = await startLocalHub({ stateDir, devices: ['r'], logger: createMemoryLogger() });
    hubs.push(first);
    const key = keyOf(first, 'r');
    const serviceString = first.serviceConnectionString;
    first.sendC2D('r', { body: Buffer.from('while you were away') });
    const ports = { ...first.ports };
    const ca = first.ca;
    await first.close();

    const second = await startLocalHub({ stateDir, ports, devices: ['r', 'new'], logger: createMemoryLogger() });
    hubs.push(second);
    expect(second.ports).toEqual(ports);
    expect(second.ca).toBe(ca);
    expect(keyOf(second, 'r')).toBe(key);
    expect(second.serviceConnectionString).toBe(serviceString);
    expect(second.stats().devices['r']?.queuedC2D).toBe(1);
    expect(second.listDevices().map((d) => d.deviceId)).toEqual(['r', 'new']);
    expect(await tlsHandshakeTo(second, second.ports.amqp)).toBe(true);
    await second.close();
  });

  it('fails with CONFIG_INVALID naming the listener when a port is taken; the running hub keeps serving', async () => {
    const error = await startLocalHub({ ports: { https: hub.ports.https }, logger: createMemoryLogger() }).catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'CONFIG_INVALID')).toBe(true);
    expect((error as Error).message).toContain(`${hub.address}:${hub.ports.https}`);
    expect(await tlsHandshake(hub.ports.https, hub.hostName)).toBe(true);
  });

  it('validates options before binding anything', async () => {
    await expect(startLocalHub({ address: 'localhost' })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'address' } });
    await expect(startLocalHub({ ports: { mqtt: 70000 } })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'ports.mqtt' } });
    await expect(startLocalHub({ devices: ['bad id/with slash'], logger: createMemoryLogger() })).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
    await expect(startLocalHub({ inMemory: true, c2d: { lockTimeoutMs: 0 } })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'c2d.lockTimeoutMs' } });
  });
});

function tlsHandshakeTo(target: LocalHub, port: number): Promise<boolean> {
  return within(10_000, `TLS to ${port}`, new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: target.address, port, ca: target.ca, servername: target.hostName }, () => {
      const ok = socket.authorized;
      socket.destroy();
      resolve(ok);
    });
    socket.once('error', reject);
  }));
}
