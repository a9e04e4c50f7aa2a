// A restarted HTTPS device whose poll record says the next poll is later must keep listening:
// its process stays alive on the wait for that poll (as an MQTT device stays alive on its socket)
// and gets the message queued meanwhile. Before, the only timer was unref'd and Node exited (13).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { writePollState } from '../src/internal.ts';

let hub: LocalHub;
const dir = mkdtempSync(join(tmpdir(), 'switchyard-listen-'));
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('an HTTPS device listening for C2D', () => {
  it('started with a poll record in the future, stays alive and receives the message at its next poll', async () => {
    hub.createDevice('listener');
    // The record of a poll that started just now: the next one is an interval away.
    await writePollState(dir, 'listener', { lastPollStartedAt: Date.now(), jitterMs: 0, throttles: 0 });
    const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(new URL('./listen-child.ts', import.meta.url)),
      hub.deviceConnectionString('listener', { protocol: 'https' }), hub.ca, hub.address, JSON.stringify(hub.ports), dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stderr.on('data', (d: Buffer) => { err += d.toString(); });
    const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    // Bounded: a child that neither exits nor prints fails the test instead of hanging it.
    const guard = setTimeout(() => child.kill('SIGKILL'), 25_000);
    await new Promise<void>((resolve) => child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) resolve();
    }).once('close', () => resolve()));
    hub.sendC2D('listener', { body: Buffer.from('wake up') });
    const code = await exit;
    clearTimeout(guard);
    expect(out, err).toContain('received wake up');
    expect(code).toBe(0);
  });
});
