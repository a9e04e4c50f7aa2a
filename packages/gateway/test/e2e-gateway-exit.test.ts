// A lean AMQP gateway process must exit by itself after close(), whatever faults it went through.
// When the hub cut its CBS link, the gateway dropped the connection by destroying its socket
// without an error: rhea listens for 'end' and 'error' only, so it never learnt that the socket was
// gone, and its heartbeat timer (half the hub's idle timeout, re-armed by each heartbeat it wrote
// into the dead socket) held the process for ever (amqp/connection.ts, destroy). When the hub
// ended its control session (KillAmqpSession), the gateway dialled a new connection and left the
// old one open: a live socket and the same timer.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub, type FaultInjection } from '@switchyard/local-hub';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

const child = fileURLToPath(new URL('./gateway-exit-child.ts', import.meta.url));

describe.each(['KillAmqpCBSLinkReq', 'KillAmqpCBSLinkResp', 'KillAmqpSession'] as const)('a lean AMQP gateway after %s', (fault: FaultInjection['type']) => {
  it('reconnects, works, and its process exits by itself after close()', async () => {
    const ids = [0, 1].map((i) => `exit-${fault}-${i}`);
    for (const id of ids) hub.createDevice(id);
    const identities = ids.map((deviceId) => ({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol: 'amqp' }) }));
    const proc = spawn(process.execPath, ['--import', 'tsx', child, JSON.stringify(identities), hub.ca, hub.address, JSON.stringify(hub.ports), 'amqp'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (code, signal) => resolve([code, signal])));
    const printed = (text: string): Promise<void> =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (out.includes(text) || proc.exitCode !== null) resolve();
          else proc.stdout.once('data', check);
        };
        check();
      });
    proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
    // Bounded: a child that hangs fails the test instead of holding it.
    const guard = setTimeout(() => proc.kill('SIGKILL'), 40_000);
    try {
      await printed('ready');
      expect(out, err).toContain('ready');
      const cut = new Promise<void>((resolve) => hub.faults.on('fault', (e) => e.fault === fault && e.phase === 'started' && resolve()));
      hub.faults.inject(ids[0]!, { type: fault });
      await cut;
      // The next round of sends and twin patches runs on the connection the gateway dials again.
      proc.stdin.write('go\n');
      await printed('step 1');
      proc.stdin.end('close\n');
      const [code, signal] = await exited;
      const report = `${out}\n${err}`;
      expect(out, report).not.toContain('uncaught');
      expect(out, report).toContain('all answered');
      expect(out, report).toContain('closed');
      expect(signal, report).toBeNull();
      expect(code, report).toBe(0);
    } finally {
      clearTimeout(guard);
    }
  }, 45_000);
});
