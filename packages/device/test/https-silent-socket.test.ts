// Over HTTPS the SDK reuses keep-alive sockets and sets no timeout on its requests. When the
// network under a reused socket goes silent (the hub's `blackhole` fault: the socket stays open,
// nothing passes), the request caught on it must end by the operation deadline with its socket
// destroyed, and the next request must go out on a new socket. The client's sockets are seen
// where https.Agent makes them (test/support/tls-sockets.ts); the waits are for socket events, bounded by the
// test timeout.
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { connect, type DeviceClient } from '../src/index.ts';
import { watchTlsSockets, type TlsSocketWatch } from '../../../test/support/tls-sockets.ts';

let hub: LocalHub;
const clients: DeviceClient[] = [];
let watch: TlsSocketWatch;

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
  watch = watchTlsSockets(() => hub.ports.https);
});

afterAll(async () => {
  watch?.stop();
  for (const client of clients) await client.close().catch(() => undefined);
  await hub?.close();
});

describe('https over a silent keep-alive socket', () => {
  it('the caught request fails by its deadline, its socket is destroyed, the next request opens a new one', async () => {
    const deviceId = `https-silent-${randomUUID().slice(0, 8)}`;
    hub.createDevice(deviceId);
    const { client } = await connect({
      connectionString: hub.deviceConnectionString(deviceId, { protocol: 'https' }),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: 'https',
      profile: { features: ['telemetry'] },
      operationTimeoutMs: 1_500,
    });
    clients.push(client as DeviceClient);
    client.on('error', () => undefined);
    const before = watch.sockets.length;
    await client.sendEvent('before');
    const used = watch.sockets.slice(before);
    expect(used).toHaveLength(1);
    const stuck = used[0]!;
    const stuckClosed = new Promise<void>((resolve) => stuck.once('close', () => resolve()));
    hub.faults.network(deviceId, { kind: 'blackhole', seconds: 60 });
    try {
      await expect(client.sendEvent('caught')).rejects.toMatchObject({ code: 'TIMEOUT', details: { delivered: 'unknown' } });
      // Still inside the black hole: only the client can have ended it.
      await stuckClosed;
      await client.sendEvent({ body: 'after', messageId: 'after-1' });
    } finally {
      hub.faults.clear(deviceId);
    }
    expect(stuck.destroyed).toBe(true);
    expect(watch.sockets.slice(before).length).toBeGreaterThanOrEqual(2);
    expect(hub.telemetry({ deviceId }).some((r) => r.systemProperties.messageId === 'after-1')).toBe(true);
    await client.close();
  }, 15_000);
});
