// Runs the real CLI the way `pnpm switchyard` does, from the repository root.
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROTOCOLS, loadProfile } from '@switchyard/profile';
import { select } from '@switchyard/selector';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const examples = join(root, 'examples/profiles');

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function cli(args: string[], env: Record<string, string> = {}): Promise<Run> {
  const base = { ...process.env };
  delete base.SWITCHYARD_PROFILE;
  delete base.SWITCHYARD_PROTOCOL;
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'packages/cli/src/main.ts', ...args], { cwd: root, env: { ...base, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    // Bounded: a hung CLI fails the test instead of stalling the suite.
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.on('error', fail);
    child.on('close', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}

const EXAMPLES: Array<[string, string]> = [
  ['battery-sensor.json', 'mqtt'],
  ['firewall-443-only.json', 'mqtt-ws'],
  ['field-gateway.json', 'amqp'],
  ['rarely-connected-https.json', 'https'],
];

describe('switchyard explain on the example profiles', () => {
  it.each(EXAMPLES)('%s --json prints the decision record and exits 0', async (file, protocol) => {
    const run = await cli(['explain', '--profile', `examples/profiles/${file}`, '--json']);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { protocol: string; port: number; fallbacks: string[]; rejected: Array<{ protocol: string; reasons: unknown[] }>; warnings: string[] };
    // The CLI must print what the library decides for the same file.
    const expected = select(await loadProfile(join(examples, file)));
    expect(out).toEqual(JSON.parse(JSON.stringify(expected)));
    expect(out.protocol).toBe(protocol);
    expect(Array.isArray(out.warnings)).toBe(true);
    expect(new Set([out.protocol, ...out.fallbacks, ...out.rejected.map((r) => r.protocol)])).toEqual(new Set(PROTOCOLS));
  });

  it('prints a readable table without --json', async () => {
    const run = await cli(['explain', '--profile', 'examples/profiles/firewall-443-only.json']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^Protocol: mqtt-ws on port 443/);
    expect(run.stdout).toMatch(/mqtt\s+8883\s+rejected\s+port-closed/);
    expect(run.stdout).toMatch(/Because:/);
  });

  it('takes the profile and a forced protocol from the environment', async () => {
    const run = await cli(['explain', '--json'], { SWITCHYARD_PROFILE: 'examples/profiles/field-gateway.json', SWITCHYARD_PROTOCOL: 'amqp-ws' });
    expect(run.code).toBe(0);
    const out = JSON.parse(run.stdout) as { protocol: string; forced: boolean; port: number };
    expect(out).toMatchObject({ protocol: 'amqp-ws', forced: true, port: 443 });
  });

  it('a --protocol flag wins over SWITCHYARD_PROTOCOL, even an invalid one', async () => {
    const run = await cli(['explain', '--profile', 'examples/profiles/field-gateway.json', '--protocol', 'amqp', '--json'], { SWITCHYARD_PROTOCOL: 'bogus' });
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ protocol: 'amqp', forced: true });
  });
});

describe('switchyard explain refusals', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-cli-'));
    await writeFile(join(dir, 'invalid.json'), JSON.stringify({ identities: 0, c2d: 'none', features: ['c2d'], colour: 1 }));
    await writeFile(join(dir, 'impossible.json'), JSON.stringify({ identities: 4, ramKiB: 256 }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('an invalid profile exits 1 with {"error"} naming each field', async () => {
    const run = await cli(['explain', '--profile', join(dir, 'invalid.json'), '--json']);
    expect(run.code).toBe(1);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; message: string; issues: Array<{ path: string }> } };
    expect(error.code).toBe('PROFILE_INVALID');
    expect(error.issues.map((i) => i.path).sort()).toEqual(['colour', 'features[0]', 'identities']);
  });

  it('an invalid profile without --json explains on stderr', async () => {
    const run = await cli(['explain', '--profile', join(dir, 'invalid.json')]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/identities: must be >= 1/);
    expect(run.stderr).toMatch(/colour: unknown field/);
  });

  it('no eligible protocol exits 1 with every protocol and its reasons', async () => {
    const run = await cli(['explain', '--profile', join(dir, 'impossible.json'), '--json']);
    expect(run.code).toBe(1);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; rejected: Array<{ protocol: string; reasons: unknown[] }> } };
    expect(error.code).toBe('NO_ELIGIBLE_PROTOCOL');
    expect(error.rejected.map((r) => r.protocol)).toEqual([...PROTOCOLS]);
    for (const r of error.rejected) expect(r.reasons.length).toBeGreaterThan(0);
  });

  it('a refused forced protocol exits 1 with the reasons', async () => {
    const run = await cli(['explain', '--profile', 'examples/profiles/firewall-443-only.json', '--protocol', 'https', '--json']);
    expect(run.code).toBe(1);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; reasons: Array<{ rule: string }> } };
    expect(error.code).toBe('PROTOCOL_REFUSED');
    expect(error.reasons.map((r) => r.rule)).toContain('https-no-twin');
    const text = await cli(['explain', '--profile', 'examples/profiles/firewall-443-only.json', '--protocol', 'https']);
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/eligible instead: mqtt-ws, amqp-ws/);
  });

  it.each([
    [['explain', '--json'], '--profile', /pass --profile FILE or set SWITCHYARD_PROFILE/],
    [['explain', '--profile', 'x.json', '--frobnicate', '--json'], '--frobnicate', /unknown option --frobnicate/],
    [['explain', '--profile', 'examples/profiles/field-gateway.json', '--protocol', 'MQTT', '--json'], '--protocol', /use one of mqtt, mqtt-ws, amqp, amqp-ws, https/],
    [['explain', '--profile', 'no/such/file.json', '--json'], 'profile', /no\/such\/file\.json: no such file/],
    [['explain', 'examples/profiles/field-gateway.json', '--json'], 'examples/profiles/field-gateway.json', /unexpected argument/],
  ])('usage error %j exits 2 naming %s', async (args, field, message) => {
    const run = await cli(args);
    expect(run.code).toBe(2);
    const { error } = JSON.parse(run.stdout) as { error: { code: string; message: string; field: string } };
    expect(error.code).toBe('CONFIG_INVALID');
    expect(error.field).toBe(field);
    expect(error.message).toMatch(message);
  });

  it('a bad SWITCHYARD_PROTOCOL is a usage error naming the variable', async () => {
    const run = await cli(['explain', '--profile', 'examples/profiles/field-gateway.json'], { SWITCHYARD_PROTOCOL: 'xmpp' });
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/SWITCHYARD_PROTOCOL is "xmpp"; use one of/);
  });
});

describe('switchyard schema, help and dispatch', () => {
  it('schema prints the JSON Schema', async () => {
    const run = await cli(['schema']);
    expect(run.code).toBe(0);
    const schema = JSON.parse(run.stdout) as { additionalProperties: boolean; properties: Record<string, unknown> };
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties)).toContain('pollIntervalSeconds');
  });

  it('each command has --help; the top level lists the commands', async () => {
    const [top, explain, schema] = await Promise.all([cli(['--help']), cli(['explain', '--help']), cli(['schema', '--help'])]);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/explain\s+show which protocol/);
    expect(top.stdout).toMatch(/schema\s+print the capability profile JSON Schema/);
    expect(explain.code).toBe(0);
    expect(explain.stdout).toMatch(/--profile FILE/);
    expect(explain.stdout).toMatch(/SWITCHYARD_PROTOCOL/);
    expect(schema.code).toBe(0);
    expect(schema.stdout).toMatch(/JSON Schema/);
  });

  it('an unknown command or none at all exits 2 with the list of commands', async () => {
    const [unknown, none] = await Promise.all([cli(['explian']), cli([])]);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command "explian"; use one of: explain, hub, send, listen, schema/);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/Usage: switchyard <command>/);
  });
});

describe('a connection string given where no argument belongs', () => {
  const KEY = 'c2VjcmV0LWtleS1uZXZlci10by1iZS1wcmludGVk';
  const connectionString = `HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=${KEY}`;

  it.each([['send'], ['listen']])('%s: refused with a pointer to --connection-string, the key never printed', async (command) => {
    for (const json of [false, true]) {
      const run = await cli([command, connectionString, ...(json ? ['--json'] : [])]);
      expect(run.code).toBe(2);
      expect(run.stdout + run.stderr).not.toContain(KEY);
      expect(run.stdout + run.stderr).toContain('--connection-string');
    }
  });
});
