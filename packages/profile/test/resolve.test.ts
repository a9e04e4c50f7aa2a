import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { resolveProfile } from '../src/index.ts';

const dir = mkdtempSync(join(tmpdir(), 'resolve-'));
const broken = join(dir, 'broken.json');
writeFileSync(broken, '{ not json');
const good = join(dir, 'good.json');
writeFileSync(good, JSON.stringify({ c2d: 'occasional', features: ['telemetry', 'c2d'] }));

describe('resolveProfile', () => {
  it('uses the options and never reads a SWITCHYARD_PROFILE they already answer', async () => {
    const out = await resolveProfile({ profile: { features: ['telemetry'] }, env: { SWITCHYARD_PROFILE: broken } });
    expect(out.source).toBe('options');
    expect(out.profile.features).toEqual(['telemetry']);
  });

  it('forced protocol from the options wins over SWITCHYARD_PROTOCOL, which is then not parsed', async () => {
    const out = await resolveProfile({ profile: {}, forceProtocol: 'amqp', env: { SWITCHYARD_PROTOCOL: 'not-a-protocol' } });
    expect(out.forceProtocol).toBe('amqp');
  });

  it('reads SWITCHYARD_PROFILE and SWITCHYARD_PROTOCOL when the options leave them open', async () => {
    const out = await resolveProfile({ env: { SWITCHYARD_PROFILE: good, SWITCHYARD_PROTOCOL: 'mqtt-ws' } });
    expect(out).toMatchObject({ source: 'SWITCHYARD_PROFILE', forceProtocol: 'mqtt-ws' });
    expect(out.profile.c2d).toBe('occasional');
  });

  it('loads a profile path given in the options', async () => {
    expect((await resolveProfile({ profile: good, env: {} })).source).toBe('file');
  });

  it('falls back to the defaults only when asked, else names the profile option', async () => {
    expect((await resolveProfile({ env: {}, otherwise: 'defaults' })).source).toBe('defaults');
    const err = await resolveProfile({ env: {} }).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'CONFIG_INVALID')).toBe(true);
    expect((err as { details: { field: string } }).details.field).toBe('profile');
  });

  it('names the variable when SWITCHYARD_PROTOCOL is not a protocol', async () => {
    const err = await resolveProfile({ profile: {}, env: { SWITCHYARD_PROTOCOL: 'MQTT' } }).catch((e: unknown) => e);
    expect(isSwitchyardError(err, 'CONFIG_INVALID')).toBe(true);
    expect(String((err as Error).message)).toContain('SWITCHYARD_PROTOCOL');
  });
});
