import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/run-hub.ts', import.meta.url));
const children = new Set<ChildProcess>();
const dirs: string[] = [];

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

interface Ready {
  hostName: string;
  address: string;
  ports: { mqtt: number; amqp: number; https: number };
  caPath: string | null;
  ca?: string;
  devices: Record<string, string>;
  serviceConnectionString: string;
  eventHubConnectionString: string;
  eventHub: { name: string; partitionIds: string[]; consumerGroups: string[]; webSocketEndpoint: string };
}

function start(args: string[]): { child: ChildProcess; ready: Promise<Ready>; exit: Promise<number | null> } {
  const child = spawn(process.execPath, ['--import', 'tsx', fixture, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let err = '';
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const ready = new Promise<Ready>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`hub not ready within 20 s; stderr: ${err}`)), 20_000);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const nl = out.indexOf('\n');
      if (nl >= 0) {
        clearTimeout(timer);
        resolve(JSON.parse(out.slice(0, nl)) as Ready);
      }
    });
    void exit.then((code) => { clearTimeout(timer); reject(new Error(`exited with ${String(code)} before ready; stdout: ${out} stderr: ${err}`)); });
  });
  return { child, ready, exit };
}

function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([promise, new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms); })]).finally(() => clearTimeout(timer));
}

function verifiedHandshake(ready: Ready, ca: string): Promise<boolean> {
  return bounded(new Promise((resolve, reject) => {
    const socket = connect({ host: ready.address, port: ready.ports.mqtt, ca, servername: ready.hostName }, () => {
      resolve(socket.authorized);
      socket.destroy();
    });
    socket.once('error', reject);
  }), 10_000, 'TLS handshake');
}

describe('switchyard hub', () => {
  it('prints one JSON line when ready, serves TLS, and exits 0 on SIGTERM', async () => {
    const { child, ready, exit } = start(['--in-memory', '--devices', 'alpha,beta', '--partitions', '2', '--consumer-groups', 'analytics', '--c2d-lock-timeout-ms', '1500', '--json', '--quiet']);
    const info = await ready;
    expect(info.eventHubConnectionString).toMatch(new RegExp(`^Endpoint=sb://127\\.0\\.0\\.1:${info.ports.amqp}/;SharedAccessKeyName=iothubowner;SharedAccessKey=[^;]+;EntityPath=${info.eventHub.name}$`));
    expect(info.eventHub).toEqual({ name: info.hostName.split('.')[0], partitionIds: ['0', '1'], consumerGroups: ['$Default', 'analytics'], webSocketEndpoint: `https://127.0.0.1:${info.ports.https}` });
    expect(Object.keys(info.devices)).toEqual(['alpha', 'beta']);
    expect(info.devices['alpha']).toMatch(new RegExp(`^HostName=${info.hostName};GatewayHostName=127\\.0\\.0\\.1:${info.ports.mqtt};DeviceId=alpha;SharedAccessKey=`));
    expect(info.serviceConnectionString).toContain('SharedAccessKeyName=iothubowner');
    expect(info.caPath).toBeNull();
    expect(await verifiedHandshake(info, info.ca!)).toBe(true);
    child.kill('SIGTERM');
    expect(await bounded(exit, 15_000, 'exit after SIGTERM')).toBe(0);
  });

  it('keeps state in --state-dir: the same keys after a restart, CA at caPath; exits 0 on SIGINT', async () => {
    const stateDir = mkdtempSync(join(tmpdir(), 'switchyard-cli-hub-'));
    dirs.push(stateDir);
    const first = start(['--state-dir', stateDir, '--devices', 'keep', '--json', '--quiet']);
    const info = await first.ready;
    expect(info.caPath).toBe(join(stateDir, 'ca.pem'));
    expect(existsSync(info.caPath!)).toBe(true);
    expect(await verifiedHandshake(info, readFileSync(info.caPath!, 'utf8'))).toBe(true);
    first.child.kill('SIGINT');
    expect(await bounded(first.exit, 15_000, 'exit after SIGINT')).toBe(0);

    const second = start(['--state-dir', stateDir, '--devices', 'keep', '--json', '--quiet']);
    const again = await second.ready;
    expect(again.devices['keep']!.split(';').at(-1)).toBe(info.devices['keep']!.split(';').at(-1));
    second.child.kill('SIGTERM');
    expect(await bounded(second.exit, 15_000, 'exit after SIGTERM')).toBe(0);
  });

  it('refuses contradictory flags with exit 2 and a JSON error', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', fixture, '--in-memory', '--state-dir', 'x', '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.add(child);
    let out = '';
    child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
    const code = await bounded(new Promise<number | null>((resolve) => child.once('exit', resolve)), 15_000, 'exit');
    expect(code).toBe(2);
    expect(JSON.parse(out)).toMatchObject({ error: { code: 'CONFIG_INVALID', field: '--state-dir' } });
  });

  it('refuses a C2D lock timeout that is not a whole number (the flag) or out of range (the hub) with exit 2', async () => {
    for (const [value, field] of [['soon', '--c2d-lock-timeout-ms'], ['0', 'c2d.lockTimeoutMs']] as const) {
      const child = spawn(process.execPath, ['--import', 'tsx', fixture, '--in-memory', '--c2d-lock-timeout-ms', value, '--json', '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'] });
      children.add(child);
      let out = '';
      child.stdout.on('data', (d: Buffer) => { out += d.toString(); });
      const code = await bounded(new Promise<number | null>((resolve) => child.once('exit', resolve)), 15_000, 'exit');
      expect(code).toBe(2);
      expect(JSON.parse(out)).toMatchObject({ error: { code: 'CONFIG_INVALID', field } });
    }
  });
});
