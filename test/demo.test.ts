// The README's main command: the demo must finish, exit 0 and show every device succeeding.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const root = fileURLToPath(new URL('../', import.meta.url));

it('runs four example devices against the embedded hub and reports them all ok', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'examples/demo/main.ts'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const killer = setTimeout(() => child.kill('SIGKILL'), 55_000);
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  clearTimeout(killer);
  expect(code, out).toBe(0);
  const rows = out.split('\n').filter((l) => /^(battery-sensor|firewalled-meter|command-validator|rarely-connected)\s/.test(l));
  expect(rows.map((r) => r.split(/\s{2,}/).slice(0, 2))).toEqual([
    ['battery-sensor', 'mqtt'],
    ['firewalled-meter', 'mqtt-ws'],
    ['command-validator', 'amqp'],
    ['rarely-connected', 'https'],
  ]);
  expect(rows.every((r) => r.trimEnd().endsWith('ok'))).toBe(true);
  expect(out).toMatch(/4\/4 devices ok/);
}, 60_000);
