// close() while the client reconnects after an outage leaves nothing running: the 10-minute soak's
// mqtt-ws client was held by the SDK's retry timers after close() (close-after-outage-child.ts).
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type FaultEvent, type LocalHub } from '@switchyard/local-hub';
import { startTestChild } from '../../../test/support/test-child.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

const child = fileURLToPath(new URL('./close-after-outage-child.ts', import.meta.url));

describe.each(['mqtt', 'amqp'] as const)('%s: close() as the hub takes connections again after an outage', (protocol) => {
  it('the process exits by itself', async () => {
    const deviceId = `close-after-outage-${protocol}`;
    hub.createDevice(deviceId);
    // Bounded: a child that hangs fails the test instead of holding it.
    const proc = startTestChild(child, [hub.deviceConnectionString(deviceId, { protocol }), hub.ca, hub.address, JSON.stringify(hub.ports), protocol], 40_000);
    try {
      await proc.printed('ready');
      expect(proc.out(), proc.err()).toContain('ready');
      const ended = new Promise<void>((resolve) => {
        const onFault = (event: FaultEvent): void => {
          if (event.deviceId !== deviceId || event.fault !== 'refuse' || event.phase !== 'ended') return;
          hub.faults.off('fault', onFault);
          resolve();
        };
        hub.faults.on('fault', onFault);
      });
      hub.faults.network(deviceId, { kind: 'refuse', seconds: 4 });
      hub.faults.network(deviceId, { kind: 'reset' });
      await ended;
      proc.endInput('close\n');
      const [code, signal] = await proc.exited;
      const out = proc.out();
      const report = `${out}\n${proc.err()}`;
      expect(out, report).not.toContain('uncaught');
      expect(out, report).toContain('closed');
      expect(out, report).not.toContain('held');
      expect(signal, report).toBeNull();
      expect(code, report).toBe(0);
    } finally {
      proc.dispose();
      hub.faults.clear(deviceId);
    }
  }, 45_000);
});
