import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isSwitchyardError, type SwitchyardError } from '@switchyard/errors';
import {
  FEATURES,
  PROTOCOLS,
  loadProfile,
  parseProfile,
  parseProtocol,
  profileJsonSchema,
  profileSchema,
  resolveProfileFromEnv,
  type ProfileIssue,
} from '@switchyard/profile';

function caught(fn: () => unknown): SwitchyardError {
  try {
    fn();
  } catch (err) {
    if (isSwitchyardError(err)) return err;
    throw err;
  }
  throw new Error('expected a SwitchyardError, nothing was thrown');
}

async function caughtAsync(fn: () => Promise<unknown>): Promise<SwitchyardError> {
  try {
    await fn();
  } catch (err) {
    if (isSwitchyardError(err)) return err;
    throw err;
  }
  throw new Error('expected a SwitchyardError, nothing was thrown');
}

const issuesOf = (err: SwitchyardError): ProfileIssue[] => err.details.issues as ProfileIssue[];

describe('parseProfile: defaults', () => {
  it('fills every default into an empty profile', () => {
    expect(parseProfile({})).toEqual({
      identities: 1,
      c2d: 'occasional',
      outboundPorts: [443, 5671, 8883],
      protocols: [...PROTOCOLS],
      auth: 'sas',
      previewFeatures: false,
      features: ['telemetry'],
      environment: 'production',
    });
  });

  it('keeps given values and leaves optional fields out when absent', () => {
    const p = parseProfile({ identities: 3, ramKiB: 2048, payloadBytes: 0, features: [], pollIntervalSeconds: 1500 });
    expect(p.identities).toBe(3);
    expect(p.ramKiB).toBe(2048);
    expect(p.payloadBytes).toBe(0);
    expect(p.features).toEqual([]);
    expect(p.pollIntervalSeconds).toBe(1500);
    expect('ramKiB' in parseProfile({})).toBe(false);
  });

  it('does not share default arrays between parses', () => {
    const a = parseProfile({});
    a.protocols.pop();
    a.outboundPorts.pop();
    a.features.push('twin');
    const b = parseProfile({});
    expect(b.protocols).toHaveLength(5);
    expect(b.outboundPorts).toHaveLength(3);
    expect(b.features).toEqual(['telemetry']);
  });

  it.each([
    ['payloadBytes at the 256 KB limit', { payloadBytes: 262144 }],
    ['a short poll interval in development', { environment: 'development', pollIntervalSeconds: 5 }],
    ['c2d "none" without C2D features', { c2d: 'none', features: ['telemetry', 'twin'] }],
    ['port 1 and port 65535', { outboundPorts: [1, 65535] }],
    ['every feature', { features: [...FEATURES] }],
  ])('accepts %s', (_name, input) => {
    expect(() => parseProfile(input)).not.toThrow();
  });
});

describe('parseProfile: every validation error names the field and what is valid', () => {
  const cases: Array<[string, unknown, string, RegExp]> = [
    ['unknown field, with a suggestion', { identity: 2 }, 'identity', /unknown field; did you mean "identities"/],
    ['unknown field, listing the valid ones', { colour: 'red' }, 'colour', /Valid fields: identities, c2d/],
    ['not an object', 42, '(root)', /must be a JSON object/],
    ['an array instead of an object', [], '(root)', /must be a JSON object/],
    ['identities as a string', { identities: '2' }, 'identities', /integer >= 1.*got string/],
    ['identities fractional', { identities: 1.5 }, 'identities', /whole number/],
    ['identities zero', { identities: 0 }, 'identities', />= 1/],
    ['c2d unknown value', { c2d: 'sometimes' }, 'c2d', /"none", "occasional", "latency-sensitive"/],
    ['ramKiB zero', { ramKiB: 0 }, 'ramKiB', />= 1 KiB/],
    ['ramKiB as a string', { ramKiB: '1MB' }, 'ramKiB', /integer number of KiB/],
    ['outboundPorts not an array', { outboundPorts: 443 }, 'outboundPorts', /array of TCP ports/],
    ['outboundPorts empty', { outboundPorts: [] }, 'outboundPorts', /at least one port/],
    ['port 0', { outboundPorts: [443, 0] }, 'outboundPorts[1]', /1\.\.65535/],
    ['port 65536', { outboundPorts: [65536] }, 'outboundPorts[0]', /1\.\.65535/],
    ['port as a string', { outboundPorts: ['443'] }, 'outboundPorts[0]', /TCP port/],
    ['duplicate port', { outboundPorts: [443, 8883, 443] }, 'outboundPorts[2]', /duplicate port 443/],
    ['unknown protocol', { protocols: ['mqtt', 'coap'] }, 'protocols[1]', /"mqtt", "mqtt-ws", "amqp", "amqp-ws", "https"/],
    ['duplicate protocol', { protocols: ['mqtt', 'mqtt'] }, 'protocols[1]', /duplicate protocol "mqtt"/],
    ['protocols empty', { protocols: [] }, 'protocols', /at least one protocol/],
    ['protocols as a string', { protocols: 'mqtt' }, 'protocols', /array of protocols/],
    ['auth unknown', { auth: 'password' }, 'auth', /"sas", "x509-thumbprint", "x509-ca"/],
    ['previewFeatures as a string', { previewFeatures: 'yes' }, 'previewFeatures', /true or false/],
    ['unknown feature', { features: ['telemetry', 'ota'] }, 'features[1]', /"telemetry", "batch", "c2d"/],
    ['duplicate feature', { features: ['twin', 'twin'] }, 'features[1]', /duplicate feature "twin"/],
    ['payloadBytes over 256 KB', { payloadBytes: 262145 }, 'payloadBytes', /<= 262144 bytes.*256 KB/],
    ['payloadBytes negative', { payloadBytes: -1 }, 'payloadBytes', />= 0 bytes/],
    ['environment unknown', { environment: 'staging' }, 'environment', /"production", "development"/],
    ['pollIntervalSeconds zero', { environment: 'development', pollIntervalSeconds: 0 }, 'pollIntervalSeconds', />= 1 second/],
    ['poll interval under 25 minutes in production', { pollIntervalSeconds: 1499 }, 'pollIntervalSeconds', />= 1500 \(25 minutes\) in production.*"development"/],
    ['poll interval under 25 minutes with production as default', { environment: 'production', pollIntervalSeconds: 60 }, 'pollIntervalSeconds', /in production/],
    ['c2d "none" with the c2d feature', { c2d: 'none', features: ['telemetry', 'c2d'] }, 'features[1]', /contradicts c2d "none"/],
    ['c2d "none" with c2d-reject-abandon', { c2d: 'none', features: ['c2d-reject-abandon'] }, 'features[0]', /contradicts c2d "none"/],
    ['null for a field', { c2d: null }, 'c2d', /must be one of/],
  ];

  it.each(cases)('%s', (_name, input, path, message) => {
    const err = caught(() => parseProfile(input));
    expect(err.code).toBe('PROFILE_INVALID');
    const issue = issuesOf(err).find((i) => i.path === path);
    expect(issue, `issues: ${JSON.stringify(issuesOf(err))}`).toBeDefined();
    expect(issue!.message).toMatch(message);
    // The message carries the path too, for people reading logs rather than details.
    expect(err.message).toContain(path);
  });

  it('reports every bad field at once, not only the first', () => {
    const err = caught(() => parseProfile({ identities: 0, c2d: 'x', auth: 'y', extra: 1 }));
    expect(issuesOf(err).map((i) => i.path).sort()).toEqual(['auth', 'c2d', 'extra', 'identities']);
  });
});

describe('loadProfile', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-profile-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads and validates a JSON file', async () => {
    const file = join(dir, 'ok.json');
    await writeFile(file, JSON.stringify({ identities: 4, c2d: 'latency-sensitive' }));
    const p = await loadProfile(file);
    expect(p.identities).toBe(4);
    expect(p.c2d).toBe('latency-sensitive');
  });

  it('names the path of a missing file', async () => {
    const file = join(dir, 'missing.json');
    const err = await caughtAsync(() => loadProfile(file));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(file);
    expect(err.message).toMatch(/no such file/);
    expect(err.details).toMatchObject({ file, reason: 'ENOENT' });
  });

  it('names the path of a directory', async () => {
    const err = await caughtAsync(() => loadProfile(dir));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain(dir);
  });

  it('reports a file that is not JSON as PROFILE_INVALID naming the file', async () => {
    const file = join(dir, 'broken.json');
    await writeFile(file, '{ "identities": 2, }');
    const err = await caughtAsync(() => loadProfile(file));
    expect(err.code).toBe('PROFILE_INVALID');
    expect(err.details.file).toBe(file);
    expect(issuesOf(err)[0]!.message).toMatch(/not valid JSON/);
  });

  it('reports schema errors with the file and the field path', async () => {
    const file = join(dir, 'bad.json');
    await writeFile(file, JSON.stringify({ protocols: ['mqtt', 'smtp'] }));
    const err = await caughtAsync(() => loadProfile(file));
    expect(err.code).toBe('PROFILE_INVALID');
    expect(err.message).toContain(file);
    expect(issuesOf(err)).toEqual([expect.objectContaining({ path: 'protocols[1]' })]);
  });
});

describe('resolveProfileFromEnv and parseProtocol', () => {
  let dir: string;
  let file: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-env-'));
    file = join(dir, 'p.json');
    await writeFile(file, JSON.stringify({ identities: 2 }));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('returns nothing when neither variable is set or both are empty', async () => {
    expect(await resolveProfileFromEnv({})).toEqual({});
    expect(await resolveProfileFromEnv({ SWITCHYARD_PROFILE: '', SWITCHYARD_PROTOCOL: ' ' })).toEqual({});
  });

  it('loads SWITCHYARD_PROFILE and reads SWITCHYARD_PROTOCOL', async () => {
    const out = await resolveProfileFromEnv({ SWITCHYARD_PROFILE: file, SWITCHYARD_PROTOCOL: 'amqp-ws' });
    expect(out.profile?.identities).toBe(2);
    expect(out.profilePath).toBe(file);
    expect(out.forceProtocol).toBe('amqp-ws');
  });

  it('refuses an unknown SWITCHYARD_PROTOCOL, naming the variable and the valid values', async () => {
    const err = await caughtAsync(() => resolveProfileFromEnv({ SWITCHYARD_PROTOCOL: 'MQTT' }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.details.field).toBe('SWITCHYARD_PROTOCOL');
    expect(err.message).toMatch(/mqtt, mqtt-ws, amqp, amqp-ws, https/);
  });

  it('passes the load error of a bad SWITCHYARD_PROFILE through', async () => {
    const err = await caughtAsync(() => resolveProfileFromEnv({ SWITCHYARD_PROFILE: join(dir, 'nope.json') }));
    expect(err.code).toBe('CONFIG_INVALID');
    expect(err.message).toContain('nope.json');
  });

  it('parseProtocol accepts each protocol and names the field on refusal', () => {
    for (const p of PROTOCOLS) expect(parseProtocol(p, '--protocol')).toBe(p);
    expect(caught(() => parseProtocol('http', '--protocol')).details.field).toBe('--protocol');
  });
});

describe('profileJsonSchema', () => {
  const schema = profileJsonSchema() as {
    type: string;
    additionalProperties: boolean;
    required?: string[];
    properties: Record<string, { description?: string; default?: unknown; enum?: unknown[]; items?: { enum?: unknown[] } }>;
  };

  it('describes every field of the schema, with descriptions', () => {
    expect(schema.type).toBe('object');
    expect(schema.additionalProperties).toBe(false);
    expect(Object.keys(schema.properties).sort()).toEqual(Object.keys(profileSchema.entries).sort());
    for (const [name, prop] of Object.entries(schema.properties)) expect(prop.description, name).toBeTruthy();
  });

  it('publishes the defaults that parseProfile fills in, and requires nothing', () => {
    const parsed = parseProfile({}) as unknown as Record<string, unknown>;
    for (const [name, prop] of Object.entries(schema.properties)) {
      if ('default' in prop) expect(prop.default, name).toEqual(parsed[name]);
      else expect(parsed[name], name).toBeUndefined();
    }
    expect(schema.required ?? []).toEqual([]);
  });

  it('lists the protocol and feature names', () => {
    expect(schema.properties.protocols!.items!.enum).toEqual([...PROTOCOLS]);
    expect(schema.properties.features!.items!.enum).toEqual([...FEATURES]);
  });

  it('publishes the no-duplicates rule of every list', () => {
    for (const name of ['outboundPorts', 'protocols', 'features']) expect(schema.properties[name], name).toMatchObject({ uniqueItems: true });
  });
});
