// `switchyard send` and `switchyard listen`, run as a user runs them (a child process), against
// a local hub in this process. The hub's own records are the evidence, not the CLI's output.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLocalHub, type LocalHub } from '@switchyard/local-hub';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const profile = (name: string): string => join(root, 'examples/profiles', name);
let hub: LocalHub;
let dir: string;
let caFile: string;

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true });
  dir = mkdtempSync(join(tmpdir(), 'switchyard-cli-device-'));
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, hub.ca);
});

afterAll(async () => {
  await hub?.close();
  rmSync(dir, { recursive: true, force: true });
});

function endpointFlags(): string[] {
  return ['--host', 'localhost', '--mqtt-port', String(hub.ports.mqtt), '--amqp-port', String(hub.ports.amqp), '--https-port', String(hub.ports.https)];
}

function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/cli/src/main.ts', ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('switchyard send', () => {
  it.each([
    ['battery-sensor.json', 'mqtt'],
    ['firewall-443-only.json', 'mqtt-ws'],
    ['field-gateway.json', 'amqp'],
    ['rarely-connected-https.json', 'https'],
  ])('%s: sends N messages over the chosen protocol (%s) and reports it', async (file, protocol) => {
    const id = `send-${protocol}`;
    hub.createDevice(id);
    const { code, stdout } = await cli(['send', '--profile', profile(file), '--connection-string', hub.deviceConnectionString(id), '--ca', caFile, ...endpointFlags(), '--count', '3', '--json']);
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as { protocol: string; sent: number; requested: number };
    expect(result).toMatchObject({ protocol, sent: 3, requested: 3 });
    const received = hub.telemetry({ deviceId: id });
    expect(received).toHaveLength(3);
    expect(received.every((r) => r.protocol === protocol)).toBe(true);
    expect(received.map((r) => (JSON.parse(r.body.toString()) as { seq: number }).seq)).toEqual([1, 2, 3]);
  });

  it('refuses bad input with a typed error naming the flag, and no secret in the output', async () => {
    const missing = await cli(['send', '--profile', profile('battery-sensor.json'), '--json']);
    expect(missing.code).toBe(2);
    expect(JSON.parse(missing.stdout)).toMatchObject({ error: { code: 'CONFIG_INVALID', field: '--connection-string' } });

    const badCount = await cli(['send', '--profile', profile('battery-sensor.json'), '--connection-string', 'HostName=h;DeviceId=d;SharedAccessKey=c2VjcmV0', '--count', 'lots']);
    expect(badCount.code).toBe(2);
    expect(badCount.stderr).toMatch(/--count must be an integer/);

    hub.createDevice('send-wrong-key');
    const wrongKey = hub.deviceConnectionString('send-wrong-key').replace(/SharedAccessKey=[^;]+/, `SharedAccessKey=${Buffer.alloc(32, 7).toString('base64')}`);
    const refused = await cli(['send', '--profile', profile('battery-sensor.json'), '--connection-string', wrongKey, '--ca', caFile, ...endpointFlags(), '--json']);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ error: { code: 'AUTH_FAILED' } });
    expect(refused.stdout + refused.stderr).not.toContain(Buffer.alloc(32, 7).toString('base64'));
  });
});

describe('switchyard listen', () => {
  it.each([
    ['firewall-443-only.json', 'mqtt-ws'],
    ['rarely-connected-https-dev.json', 'https'],
  ])('%s: prints each C2D message as a JSON line, completes it, and exits 0 on SIGINT', async (file, protocol) => {
    const id = `listen-${protocol}`;
    hub.createDevice(id);
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/cli/src/main.ts', 'listen', '--profile', profile(file), '--connection-string', hub.deviceConnectionString(id), '--ca', caFile, ...endpointFlags(), '--state-dir', join(dir, 'poll'), '--json'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    const killer = setTimeout(() => child.kill('SIGKILL'), 25_000);
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const events: Array<Record<string, unknown>> = [];
    const lines = createInterface({ input: child.stdout });
    const seen = (event: string): Promise<Record<string, unknown>> =>
      new Promise((resolve) => {
        const check = (): void => {
          const hit = events.find((e) => e.event === event);
          if (hit) resolve(hit);
          else setTimeout(check, 20);
        };
        check();
      });
    lines.on('line', (line) => events.push(JSON.parse(line) as Record<string, unknown>));

    expect(await seen('ready')).toMatchObject({ protocol, deviceId: id });
    hub.sendC2D(id, { body: Buffer.from('open the valve'), properties: { priority: 'high' }, messageId: 'm-1' });
    expect(await seen('message')).toMatchObject({ messageId: 'm-1', body: 'open the valve', properties: { priority: 'high' } });
    await expect.poll(() => hub.counters(id).c2dCompleted, { timeout: 10_000 }).toBe(1);
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    clearTimeout(killer);
    expect(events.at(-1)).toEqual({ event: 'closed' });
  });
});
