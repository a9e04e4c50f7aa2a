// A gateway closed over a network that drops everything (the hub's `blackhole` fault on its
// shared connection: the socket stays open, nothing passes): close() must not wait for detach,
// session-end and close answers that cannot come. It gives the orderly close 2 s, destroys the
// sockets, and settles within about 3 s, with none of its sockets left open. A case that misses
// its bound fails by the test timeout; the sockets are seen where they are dialled.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, silentLogger, type LocalHub } from '@switchyard/local-hub';
import { createGateway, type Gateway, type GatewayEngine, type GatewayProtocol } from '../src/index.ts';
import { watchTlsSockets, type TlsSocketWatch } from '../../../test/support/tls-sockets.ts';

const cases: Array<[GatewayProtocol, GatewayEngine]> = [
  ['amqp', 'lean'],
  ['amqp', 'azure-client'],
  ['amqp-ws', 'lean'],
  ['amqp-ws', 'azure-client'],
];

let hub: LocalHub;
let watch: TlsSocketWatch;
let port = 0;
const gateways: Gateway[] = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
  watch = watchTlsSockets(() => port);
});

afterAll(async () => {
  watch?.stop();
  for (const gw of gateways) await gw.close().catch(() => undefined);
  await hub?.close();
});

let serial = 0;

describe.each(cases)('%s, engine %s, over a dead network', (protocol, engine) => {
  it('close() destroys the connection after its 2 s grace instead of waiting for the hub', async () => {
    port = protocol === 'amqp' ? hub.ports.amqp : hub.ports.https;
    const ids = Array.from({ length: 3 }, () => `bounded-${protocol}-${engine}-${++serial}`);
    for (const id of ids) hub.createDevice(id);
    const before = watch.sockets.length;
    const gw = await createGateway({
      protocol,
      engine,
      ca: hub.ca,
      endpoint: { host: hub.address, port },
      identities: ids.map((deviceId) => ({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp' }) })),
    });
    gateways.push(gw);
    gw.on('identity-error', () => undefined);
    expect((await gw.open()).failed).toEqual([]);
    // Links on the wire that a close has to detach: telemetry and C2D for each identity.
    for (const id of ids) {
      const device = gw.get(id)!.device;
      device.on('message', () => undefined);
      await device.sendEvent('before');
    }
    const dialled = watch.sockets.slice(before);
    expect(dialled.filter((s) => !s.destroyed)).toHaveLength(1);
    expect(hub.faults.network(ids[0]!, { kind: 'blackhole', seconds: 60 }).phase).toBe('started');
    try {
      await gw.close();
    } finally {
      hub.faults.clear(ids[0]!);
    }
    expect(gw.connections()).toEqual([]);
    expect(dialled.filter((s) => !s.destroyed)).toEqual([]);
  }, 8_000);
});
