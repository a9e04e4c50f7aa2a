// The consumer's view: what `npm install` gives a user, used the way a user uses it. The packed
// tarballs are installed with npm into a project outside the workspace (consumer-project.ts);
// every check below runs there, with plain node, strict tsc, npx, and no access to our sources.
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { connect as tlsConnect } from 'node:tls';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { fileURLToPath } from 'node:url';
import { ROOT, createConsumerProject, listTarball, readFromTarball, runIn, startIn, type ConsumerProject } from '../../scripts/consumer-project.ts';

const PROTOCOLS = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];

// Each step here is a whole process (strict tsc over the installed types takes ~20 s alone); on
// two cores shared with the rest of the suite, 30 s per test is not enough headroom.
vi.setConfig({ testTimeout: 180_000 });

interface HubInfo { hostName: string; address: string; ports: { mqtt: number }; ca: string; devices: Record<string, string> }
let project: ConsumerProject;

beforeAll(async () => {
  project = await createConsumerProject({ appFiles: fileURLToPath(new URL('./app', import.meta.url)) });
}, 600_000);

afterAll(() => project?.remove());

const lines = (text: string): Array<Record<string, unknown>> => text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);

describe('the published tarballs', () => {
  it('hold the build, types, sources for source maps, README, LICENSE and CHANGELOG; no tests, fixtures or build state', async () => {
    for (const [name, tarball] of Object.entries(project.tarballs)) {
      const files = await listTarball(tarball);
      const entry = name === '@switchyard/cli' ? 'package/dist/main.js' : 'package/dist/index.js';
      expect(files, name).toEqual(expect.arrayContaining(['package/package.json', 'package/README.md', 'package/LICENSE', 'package/CHANGELOG.md', entry]));
      if (name !== '@switchyard/cli') expect(files, name).toContain('package/dist/index.d.ts');
      const stray = files.filter((f) => /\/(test|tests|fixtures|__tests__)\/|\.test\.|\.tsbuildinfo$|tsconfig/.test(f));
      expect(stray, name).toEqual([]);
      const manifest = JSON.parse(await readFromTarball(tarball, 'package/package.json')) as Record<string, unknown>;
      expect(manifest.private, name).toBeUndefined();
      expect(JSON.stringify(manifest), name).not.toContain('workspace:');
      expect(manifest).toMatchObject({ license: 'MIT', engines: { node: '>=20.19' }, type: 'module' });
    }
  });
});

describe('a consumer project', () => {
  it('runs an ESM program with plain node: the local hub in-process, then all five protocols and a gateway', async () => {
    const result = await runIn(project.dir, process.execPath, ['round-trip.mjs']);
    expect(result.code, result.stderr).toBe(0);
    const out = lines(result.stdout);
    expect(out.filter((l) => 'protocol' in l)).toEqual(
      PROTOCOLS.map((protocol) => ({ protocol, chosen: protocol, telemetry: [`esm-${protocol}-1`], received: `hello ${protocol}` })),
    );
    expect(out.find((l) => 'gateway' in l)).toEqual({ gateway: 2, telemetry: [1, 1] });
  });

  it('serves the backend\'s half to azure-iothub and @azure/event-hubs, unchanged, from the installed hub', async () => {
    const result = await runIn(project.dir, process.execPath, ['backend.mjs']);
    expect(result.code, result.stderr).toBe(0);
    expect(lines(result.stdout)).toEqual([{ registered: 'backend-1', body: { temperature: 21 }, kind: 'reading', messageId: 'b-1' }]);
  });

  it('answers a direct method from azure-iothub on connect() over AMQP and on an identity of each gateway engine', async () => {
    const result = await runIn(project.dir, process.execPath, ['methods.mjs']);
    expect(result.code, result.stderr).toBe(0);
    expect(lines(result.stdout)).toEqual(
      ['connect-amqp', 'gateway-lean', 'gateway-azure-client'].map((client) => ({ client, status: 200, echoed: true, errors: [] })),
    );
  });

  it('runs the same from CommonJS with require()', async () => {
    const result = await runIn(project.dir, process.execPath, ['round-trip.cjs']);
    expect(result.code, result.stderr).toBe(0);
    expect(lines(result.stdout)).toEqual(PROTOCOLS.map((protocol) => ({ protocol, telemetry: [`cjs-${protocol}-1`], received: `hello ${protocol}` })));
  });

  it('compiles a strict TypeScript program (nodenext) against the installed types, and the output runs', async () => {
    const tsc = await runIn(project.dir, 'node_modules/.bin/tsc', ['-p', 'tsconfig.nodenext.json']);
    expect(tsc.code, tsc.stdout).toBe(0);
    const result = await runIn(project.dir, process.execPath, ['out/app.js']);
    expect(result.code, result.stderr).toBe(0);
    expect(lines(result.stdout)).toEqual([{ protocol: 'mqtt', twinVersion: 'number', chosen: 'mqtt', badInput: 'CONFIG_INVALID' }]);
  });

  it('compiles the same program with moduleResolution bundler', async () => {
    const tsc = await runIn(project.dir, 'node_modules/.bin/tsc', ['-p', 'tsconfig.bundler.json']);
    expect(tsc.code, tsc.stdout).toBe(0);
  });

  it('refuses to compile a profile with a typo, a wrong type, an unknown field or a wrong value', async () => {
    const tsc = await runIn(project.dir, 'node_modules/.bin/tsc', ['-p', 'tsconfig.typo.json']);
    expect(tsc.code).not.toBe(0);
    const errorLines = [...tsc.stdout.matchAll(/^typo\.ts\((\d+),\d+\): error (TS\d+)/gm)].map((m) => Number(m[1]));
    expect(errorLines).toEqual([6, 7, 8, 9]);
    expect(tsc.stdout).toContain("'\"telemetryy\"' is not assignable");
    expect(tsc.stdout).toContain("'featurs' does not exist");
    expect(tsc.stdout).toContain("'\"sometimes\"' is not assignable");
  });

  it('runs the README quick start as written', async () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const quickStart = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1];
    expect(quickStart, 'README.md has a "## Quick start" section with a ```js block').toBeDefined();
    writeFileSync(join(project.dir, 'quick-start.mjs'), quickStart!);
    const result = await runIn(project.dir, process.execPath, ['quick-start.mjs']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toContain('command: set 20');
  });
});

describe('the switchyard command from npx', () => {
  it('explains a profile file that names the installed schema', async () => {
    writeFileSync(join(project.dir, 'profile.json'), JSON.stringify({ $schema: './node_modules/@switchyard/profile/schema.json', features: ['telemetry', 'c2d'], outboundPorts: [443] }));
    const result = await runIn(project.dir, 'npx', ['switchyard', 'explain', '--profile', 'profile.json', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ protocol: 'mqtt-ws', port: 443 });
    const schema = JSON.parse(readFileSync(join(project.dir, 'node_modules/@switchyard/profile/schema.json'), 'utf8')) as { properties: object };
    expect(Object.keys(schema.properties)).toContain('features');
  });

  /** Starts `switchyard hub` and resolves with its ready line, the JSON a caller reads. */
  async function startHub(command: string, args: string[]): Promise<{ child: ReturnType<typeof startIn>; info: HubInfo; readyMs: number }> {
    const started = performance.now();
    const child = startIn(project.dir, command, [...args, 'hub', '--devices', 'd1', '--json', '--in-memory', '--quiet']);
    let out = '';
    const info = await new Promise<HubInfo>((resolve, reject) => {
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(JSON.parse(out.slice(0, out.indexOf('\n'))) as HubInfo);
      });
      child.once('exit', (code) => reject(new Error(`hub exited with ${String(code)} before it was ready`)));
    });
    return { child, info, readyMs: performance.now() - started };
  }

  async function expectServing(info: HubInfo): Promise<void> {
    expect(info.devices.d1).toMatch(new RegExp(`^HostName=${info.hostName};(GatewayHostName=[^;]+;)?DeviceId=d1;SharedAccessKey=`));
    const socket = tlsConnect({ host: info.address, port: info.ports.mqtt, servername: info.hostName, ca: info.ca });
    await once(socket, 'secureConnect');
    expect(socket.authorized).toBe(true);
    socket.destroy();
  }

  it('`npx switchyard hub` starts the hub, prints its connection strings and serves TLS with the printed CA', async () => {
    const { child, info, readyMs } = await startHub('npx', ['switchyard']);
    try {
      console.log(`npx switchyard hub --in-memory: ready after ${readyMs.toFixed(0)} ms (npx included)`);
      await expectServing(info);
    } finally {
      // npx runs the bin in a child of its own: the signal goes to the whole group.
      process.kill(-child.pid!, 'SIGTERM');
      if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
    }
  });

  it('the installed bin stops cleanly on SIGTERM with exit code 0', async () => {
    const { child, info, readyMs } = await startHub(process.execPath, ['node_modules/.bin/switchyard']);
    try {
      console.log(`switchyard hub --in-memory: ready after ${readyMs.toFixed(0)} ms`);
      await expectServing(info);
      child.kill('SIGTERM');
      const [code] = (await once(child, 'exit')) as [number | null];
      expect(code).toBe(0);
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  });
});
