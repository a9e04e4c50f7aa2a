// 200 identities over one AMQP connection (and one AMQP-WS connection) against the real local hub,
// with the real Azure device transport over TLS verified against the hub's CA.
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, silentLogger, type LocalHub } from '@switchyard/local-hub';
import { isSwitchyardError } from '@switchyard/errors';
import { createGateway, type Gateway, type GatewayEngine, type GatewayProtocol } from '../src/index.ts';
import { inBatches, waitFor } from './helpers.ts';

const N = 200;
const ids = Array.from({ length: N }, (_, i) => `dev-${String(i).padStart(3, '0')}`);

// Both engines: the lean DeviceClient on the shared session (default) and the Azure Client per identity.
const cases: Array<[GatewayProtocol, GatewayEngine]> = [
  ['amqp', 'azure-client'],
  ['amqp-ws', 'azure-client'],
  ['amqp', 'lean'],
  ['amqp-ws', 'lean'],
];

describe.each(cases)(`%s, engine %s: ${N} identities over one connection`, (protocol, engine) => {
  let hub: LocalHub;
  let gw: Gateway;
  const lostConnections: string[] = [];
  const identityErrors: Array<{ deviceId: string; code: string }> = [];
  const disconnects: Array<{ deviceId: string; willRetry: boolean }> = [];

  const connectionString = (deviceId: string): string => hub.deviceConnectionString(deviceId, { protocol: 'amqp' });
  const identitiesOnHub = (): string[] => hub.stats().connectedIdentities.filter((s) => s.protocol === protocol).map((s) => s.deviceId);

  beforeAll(async () => {
    hub = await startLocalHub({ inMemory: true, logger: silentLogger });
    for (const id of ids) hub.createDevice(id);
    gw = await createGateway({
      protocol,
      engine,
      ca: hub.ca,
      // The AMQP case also names the HTTPS port, which file upload needs; AMQP-WS's port is it.
      endpoint: protocol === 'amqp' ? { host: hub.address, port: hub.ports.amqp, ports: { https: hub.ports.https } } : { host: hub.address, port: hub.ports.https },
      identities: ids.map((deviceId) => ({ deviceId, connectionString: connectionString(deviceId) })),
    });
    gw.on('connection-lost', ({ connectionId }) => lostConnections.push(connectionId));
    gw.on('identity-error', ({ deviceId, error }) => identityErrors.push({ deviceId, code: error.code }));
    gw.on('identity-disconnected', ({ deviceId, willRetry }) => disconnects.push({ deviceId, willRetry }));
    const summary = await gw.open();
    expect(summary.failed).toEqual([]);
    expect(summary.connected).toHaveLength(N);
  });

  afterAll(async () => {
    await gw?.close();
    await hub?.close();
  });

  it('carries all identities over a single connection, each with its own CBS token', () => {
    expect(gw.connections()).toHaveLength(1);
    expect(hub.stats().connections[protocol]).toBe(1);
    const onHub = identitiesOnHub();
    expect(new Set(onHub).size).toBe(N);
    expect(new Set(hub.stats().connectedIdentities.map((s) => s.connectionId)).size).toBe(1);
    for (const id of ids) expect(gw.get(id)?.state).toBe('connected');
    // The lean engine has no Azure Client behind the identity, and puts every identity's links
    // on the one session that carries the CBS pair; the other gives each identity a session.
    expect(gw.get(ids[0]!)!.client === undefined).toBe(engine === 'lean');
    expect(gw.connections()[0]!.sessions).toBe(engine === 'lean' ? 1 : N + 1);
  });

  it('uploads a file for one identity through the hub, attributed to that identity', async () => {
    // @azure/storage-blob PUTs the blob with https.globalAgent and ignores `ca`: trust the hub's
    // CA there for this test (verification stays on). The SAS request and the completion notice
    // go through the gateway's own options.
    const previousCa = https.globalAgent.options.ca;
    https.globalAgent.options.ca = hub.ca;
    try {
      const content = Buffer.from(`readings of dev-007 over ${protocol}\n`);
      await gw.get('dev-007')!.device.uploadToBlob('logs/today.txt', content);
      const files = await serviceGet<Array<{ blobName: string; contentBase64: string; notification?: { isSuccess: boolean } }>>(`/local/devices/dev-007/files`);
      expect(files.map((f) => f.blobName)).toEqual(['dev-007/logs/today.txt']);
      expect(Buffer.from(files[0]!.contentBase64, 'base64').equals(content)).toBe(true);
      expect(files[0]!.notification).toMatchObject({ isSuccess: true });
      expect(await serviceGet<unknown[]>(`/local/devices/dev-008/files`)).toEqual([]);
    } finally {
      https.globalAgent.options.ca = previousCa;
    }
  });

  /** The local hub's service REST API, authenticated with its service token. */
  function serviceGet<T>(path: string): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const req = https.request({ host: hub.address, port: hub.ports.https, path, ca: hub.ca, servername: hub.hostName, headers: { Authorization: hub.serviceToken() } }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body) as T) : reject(new Error(`${path}: HTTP ${String(res.statusCode)} ${body}`))));
      });
      req.on('error', reject);
      req.end();
    });
  }

  it('attributes telemetry from every identity to that identity', async () => {
    const before = hub.telemetry().length;
    await inBatches(ids, 50, async (id) => {
      await gw.get(id)!.device.sendEvent({ body: `from ${id}`, properties: { sender: id } });
    });
    const records = hub.telemetry().slice(before);
    expect(records).toHaveLength(N);
    for (const record of records) {
      expect(record.body.toString()).toBe(`from ${record.deviceId}`);
      expect(record.properties.sender).toBe(record.deviceId);
    }
    expect(new Set(records.map((r) => r.deviceId)).size).toBe(N);
  });

  it('delivers C2D to its addressee only', async () => {
    const [addressee, neighbour] = [gw.get('dev-007')!.device, gw.get('dev-008')!.device];
    const got = { addressee: [] as string[], neighbour: [] as string[] };
    addressee.on('message', (msg) => {
      got.addressee.push(msg.body.toString());
      void msg.complete();
    });
    neighbour.on('message', (msg) => {
      got.neighbour.push(msg.body.toString());
      void msg.complete();
    });
    hub.sendC2D('dev-007', { body: Buffer.from('for 007') });
    await waitFor(() => got.addressee.length === 1, 'dev-007 to receive its C2D');
    // A marker sent after proves dev-008's link works and that nothing else reached it first.
    hub.sendC2D('dev-008', { body: Buffer.from('marker for 008') });
    await waitFor(() => got.neighbour.length === 1, 'dev-008 to receive its marker');
    expect(got.addressee).toEqual(['for 007']);
    expect(got.neighbour).toEqual(['marker for 008']);
  });

  it('answers a direct method on one identity', async () => {
    gw.get('dev-010')!.device.onMethod('echo', (request) => ({ status: 200, payload: { echoed: request.payload, by: 'dev-010' } }));
    let result: { status: number; payload: unknown } | undefined;
    // The methods link attaches asynchronously after onDeviceMethod; the hub answers 404 until then.
    const deadline = Date.now() + 10_000;
    while (result === undefined && Date.now() < deadline) {
      try {
        result = await hub.invokeMethod('dev-010', { methodName: 'echo', payload: { n: 42 }, responseTimeoutInSeconds: 5 });
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    expect(result).toEqual({ status: 200, payload: { echoed: { n: 42 }, by: 'dev-010' } });
  });

  it('reads and patches the twin of one identity', async () => {
    const device = gw.get('dev-012')!.device;
    await device.updateReported({ firmware: '1.2.3' });
    const twin = await device.getTwin();
    expect(twin.reported.firmware).toBe('1.2.3');
    expect(hub.readTwin('dev-012').reported.firmware).toBe('1.2.3');
    expect(hub.readTwin('dev-013').reported.firmware).toBeUndefined();
  });

  it('removes an identity and adds it back without disturbing the connection', async () => {
    await gw.remove('dev-020');
    expect(gw.get('dev-020')).toBeUndefined();
    await gw.get('dev-021')!.device.sendEvent('still here');
    const again = await gw.add({ deviceId: 'dev-020', connectionString: connectionString('dev-020') });
    expect(again.state).toBe('connected');
    const before = hub.telemetry({ deviceId: 'dev-020' }).length;
    await again.device.sendEvent('back again');
    expect(hub.telemetry({ deviceId: 'dev-020' }).slice(before).map((r) => r.body.toString())).toEqual(['back again']);
    expect(gw.connections()).toHaveLength(1);
    expect(hub.stats().connections[protocol]).toBe(1);
    expect(lostConnections).toEqual([]);
  });

  it('fails an identity with a bad key alone', async () => {
    hub.createDevice('bad-key');
    const good = connectionString('bad-key');
    const forged = good.replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 7).toString('base64')}`);
    expect(forged).not.toBe(good);
    const failure = await gw.add({ deviceId: 'bad-key', connectionString: forged }).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(isSwitchyardError(failure, 'AUTH_FAILED')).toBe(true);
    expect(gw.get('bad-key')).toBeUndefined();
    expect(lostConnections).toEqual([]);
    await gw.get('dev-030')!.device.sendEvent('unaffected');
    expect(hub.telemetry({ deviceId: 'dev-030' }).at(-1)?.body.toString()).toBe('unaffected');
  });

  it('reports an identity removed from the hub on that identity alone', async () => {
    const victim = 'dev-040';
    await gw.get(victim)!.device.sendEvent('before removal');
    hub.removeDevice(victim);
    await waitFor(() => disconnects.some((d) => d.deviceId === victim && !d.willRetry), `${victim} to be reported disconnected for good`);
    expect(identityErrors.filter((e) => e.deviceId === victim).length).toBeGreaterThan(0);
    expect(identityErrors.every((e) => e.deviceId === victim)).toBe(true);
    expect(lostConnections).toEqual([]);
    // Everyone else is still connected and working, on the same connection.
    await gw.get('dev-041')!.device.sendEvent('neighbour fine');
    expect(identitiesOnHub()).not.toContain(victim);
    expect(new Set(identitiesOnHub()).size).toBe(N - 1);
    expect(hub.stats().connections[protocol]).toBe(1);
    // Re-created on the hub (new keys), it comes back through remove + add.
    hub.createDevice(victim);
    await gw.remove(victim);
    const back = await gw.add({ deviceId: victim, connectionString: connectionString(victim) });
    await back.device.sendEvent('re-created');
    expect(hub.telemetry({ deviceId: victim }).at(-1)?.body.toString()).toBe('re-created');
  });
});
