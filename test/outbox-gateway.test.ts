// The gateway's outbox option: every identity, on every engine, gets an outbox of its own (its own
// directory under outbox.dir), its sends carry stable message ids, and what the hub had not
// acknowledged when the gateway stopped is delivered by the next gateway over the same directory.
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { createGateway, type GatewayEngine } from '@switchyard/gateway';
import type { Protocol } from '@switchyard/profile';

let hub: LocalHub;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-gateway-outbox-'));
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

const cases: Array<{ protocol: Protocol; engine: GatewayEngine }> = [
  { protocol: 'amqp', engine: 'lean' },
  { protocol: 'amqp', engine: 'azure-client' },
  { protocol: 'mqtt', engine: 'lean' },
];

describe.each(cases)('gateway over $protocol ($engine) with an outbox', ({ protocol, engine }) => {
  it('gives each identity its own outbox and directory; every message reaches the hub once, with its id', async () => {
    const base = join(dir, `${protocol}-${engine}`);
    const ids = [`gw-${protocol}-${engine}-a`, `gw-${protocol}-${engine}-b`];
    for (const id of ids) hub.createDevice(id);
    const gateway = await createGateway({
      engine,
      protocol,
      env: {},
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      outbox: { dir: base },
      identities: ids.map((deviceId) => ({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol }) })),
    });
    try {
      const summary = await gateway.open();
      expect(summary.failed).toEqual([]);
      for (const id of ids) {
        const device = gateway.get(id)!.device;
        expect(device.outbox).toBeDefined();
        await Promise.all(Array.from({ length: 10 }, (_, i) => device.sendEvent(`${id}-${i}`)));
        expect(device.outbox!.depth).toBe(0);
        expect(existsSync(join(base, encodeURIComponent(id), 'outbox.log'))).toBe(true);
        const got = hub.telemetry({ deviceId: id }).sort((x, y) => x.sequenceNumber - y.sequenceNumber);
        expect(got.map((r) => r.body.toString())).toEqual(Array.from({ length: 10 }, (_, i) => `${id}-${i}`));
        expect(new Set(got.map((r) => String(r.systemProperties.messageId))).size).toBe(10);
      }
    } finally {
      await gateway.close();
    }
  });
});

describe('gateway outbox options', () => {
  it('are checked when the gateway is created, naming the field', async () => {
    const error = await createGateway({ env: {}, protocol: 'amqp', outbox: { maxMessages: 0 } }).catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'CONFIG_INVALID')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe('outbox.maxMessages');
    const unknown = await createGateway({ env: {}, protocol: 'amqp', outbox: { whenFull: 'drop-newest' } as never }).catch((e: unknown) => e);
    expect((unknown as { details: { field: string } }).details.field).toBe('outbox.whenFull');
  });
});
