// The soak's sequence, in a process of its own: over AMQP and AMQP-WS, the first twin request
// goes out on a connection the network then drops everything of (a black hole), times out, and
// the client replaces the connection (links/azure-client-link.ts, operationTimedOut). Closing the
// old client while its twin links attached threw an uncaught TypeError out of azure-iot-device-amqp
// (amqp_twin_client.js:213) and left that client's disconnect waiting for ever, its SAS renewal
// timer holding the process (links/amqp-twin-guard.ts). The process must neither throw nor
// outlive its close().
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { startTestChild } from '../../../test/support/test-child.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

const child = fileURLToPath(new URL('./amqp-replace-child.ts', import.meta.url));

describe.each(['amqp', 'amqp-ws'] as const)('%s: a twin request cut off by a dead network, the connection replaced', (protocol) => {
  it('throws nothing, answers on the new connection, and the process exits by itself after close()', async () => {
    const deviceId = `replace-twin-${protocol}`;
    hub.createDevice(deviceId);
    // Bounded: a child that hangs fails the test instead of holding it.
    const proc = startTestChild(child, [hub.deviceConnectionString(deviceId, { protocol }), hub.ca, hub.address, JSON.stringify(hub.ports), protocol], 40_000);
    try {
      await proc.printed('ready');
      expect(proc.out(), proc.err()).toContain('ready');
      const fault = hub.faults.network(deviceId, { kind: 'blackhole', seconds: 120 });
      expect(fault.phase).toBe('started');
      proc.endInput('go\n');
      const [code, signal] = await proc.exited;
      const out = proc.out();
      const report = `${out}\n${proc.err()}`;
      expect(out, report).not.toContain('uncaught');
      expect(out, report).toContain('first TIMEOUT');
      expect(out, report).toContain('second answered');
      expect(out, report).toContain('closed');
      expect(signal, report).toBeNull();
      expect(code, report).toBe(0);
    } finally {
      proc.dispose();
      hub.faults.clear(deviceId);
    }
  }, 45_000);
});
