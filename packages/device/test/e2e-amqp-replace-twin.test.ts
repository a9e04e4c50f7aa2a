// The soak's sequence, in a process of its own: over AMQP and AMQP-WS, the first twin request
// goes out on a connection the network then drops everything of (a black hole), times out, and
// the client replaces the connection (links/azure-client-link.ts, operationTimedOut). Closing the
// old client while its twin links attached threw an uncaught TypeError out of azure-iot-device-amqp
// (amqp_twin_client.js:213) and left that client's disconnect waiting for ever, its SAS renewal
// timer holding the process (links/amqp-twin-guard.ts). The process must neither throw nor
// outlive its close().
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';

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
    const proc = spawn(process.execPath, ['--import', 'tsx', child, hub.deviceConnectionString(deviceId, { protocol }), hub.ca, hub.address, JSON.stringify(hub.ports), protocol], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (code, signal) => resolve([code, signal])));
    // Bounded: a child that hangs fails the test instead of holding it.
    const guard = setTimeout(() => proc.kill('SIGKILL'), 40_000);
    try {
      await new Promise<void>((resolve) => {
        proc.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          if (out.includes('ready')) resolve();
        });
        proc.stdout.once('close', () => resolve());
      });
      expect(out, err).toContain('ready');
      const fault = hub.faults.network(deviceId, { kind: 'blackhole', seconds: 120 });
      expect(fault.phase).toBe('started');
      proc.stdin.end('go\n');
      const [code, signal] = await exited;
      const report = `${out}\n${err}`;
      expect(out, report).not.toContain('uncaught');
      expect(out, report).toContain('first TIMEOUT');
      expect(out, report).toContain('second answered');
      expect(out, report).toContain('closed');
      expect(signal, report).toBeNull();
      expect(code, report).toBe(0);
    } finally {
      clearTimeout(guard);
      hub.faults.clear(deviceId);
    }
  }, 45_000);
});
