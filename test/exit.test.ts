// Everything Switchyard starts stops with close(): hub, device clients over every protocol and
// the gateway. A leaked socket or timer would keep the child process alive.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/close-then-exit.ts', import.meta.url));

it('a process that used the hub, the client and the gateway exits by itself after closing them', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  // The work takes a few seconds; a leaked idle timer would hold the process for minutes.
  const killer = setTimeout(() => child.kill('SIGKILL'), 45_000);
  const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  clearTimeout(killer);
  expect(out).toContain('closed');
  expect(signal, `the process had to be killed; output:\n${out}`).toBeNull();
  expect(code, out).toBe(0);
}, 50_000);
