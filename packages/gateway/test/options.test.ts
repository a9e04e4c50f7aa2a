// The pure parts: where an identity goes in the pool, and what options are refused and why.
import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isRetryable } from '@switchyard/device/internal';
import { chooseConnection, createGateway, parseIdentity, reopenDelayMs, type GatewayOptions } from '../src/internal.ts';

const KEY = Buffer.alloc(32, 1).toString('base64');
const cs = (deviceId: string, extra = ''): string => `HostName=hub.azure-devices.net;DeviceId=${deviceId};SharedAccessKey=${KEY}${extra}`;

async function refusal(options: GatewayOptions): Promise<{ code: string; field: unknown; message: string }> {
  try {
    await createGateway({ env: {}, ...options });
  } catch (err) {
    if (!isSwitchyardError(err)) throw err;
    return { code: err.code, field: err.details.field, message: err.message };
  }
  throw new Error('createGateway accepted the options');
}

describe('chooseConnection', () => {
  it('fills the oldest connection with room first', () => {
    expect(chooseConnection([], 3)).toBe(-1);
    expect(chooseConnection([3, 2, 0], 3)).toBe(1);
    expect(chooseConnection([1, 0], 3)).toBe(0);
    expect(chooseConnection([3, 3], 3)).toBe(-1);
    expect(chooseConnection([995, 994], 995)).toBe(1);
  });
});

describe('reopenDelayMs', () => {
  const policy = { initialDelayMs: 1_000, maxDelayMs: 60_000 };
  it('doubles from the initial delay up to the cap, with jitter between half and all of it', () => {
    expect([0, 1, 2, 5, 6, 40].map((attempt) => reopenDelayMs(attempt, policy, 0.999999))).toEqual([1_000, 2_000, 4_000, 32_000, 60_000, 60_000]);
    expect([0, 1, 6].map((attempt) => reopenDelayMs(attempt, policy, 0))).toEqual([500, 1_000, 30_000]);
    for (let attempt = 0; attempt < 50; attempt++) {
      const delay = reopenDelayMs(attempt, policy, 0.37);
      expect(delay).toBeGreaterThanOrEqual(policy.initialDelayMs / 2);
      expect(delay).toBeLessThanOrEqual(policy.maxDelayMs);
    }
  });
});

describe('what the gateway re-opens for (the taxonomy\'s retryable)', () => {
  it('retries what the network or the hub caused, not what the identity caused', () => {
    const named = (name: string): Error => Object.assign(new Error('x'), { name });
    expect(['NotConnectedError', 'TimeoutError', 'ServiceUnavailableError', 'ThrottlingError'].every((n) => isRetryable(named(n)))).toBe(true);
    expect(['UnauthorizedError', 'DeviceNotFoundError', 'Error'].some((n) => isRetryable(named(n)))).toBe(false);
  });
});

describe('profile resolution', () => {
  it('never reads SWITCHYARD_PROFILE when a profile is passed, so a broken file there cannot fail createGateway', async () => {
    const broken = join(mkdtempSync(join(tmpdir(), 'gw-profile-')), 'broken.json');
    writeFileSync(broken, '{ not json');
    const gateway = await createGateway({ profile: { features: ['telemetry'] }, env: { SWITCHYARD_PROFILE: broken } });
    expect(gateway.protocol).toMatch(/^amqp/);
    await gateway.close();
  });
});

describe('parseIdentity', () => {
  it('takes the hub name from HostName and the address to dial from GatewayHostName', () => {
    expect(parseIdentity({ deviceId: 'd1', connectionString: cs('d1', ';GatewayHostName=127.0.0.1:15671') }, 0)).toMatchObject({
      hubHostName: 'hub.azure-devices.net',
      dialHost: '127.0.0.1',
      dialPort: 15671,
    });
    expect(parseIdentity({ deviceId: 'd1', connectionString: cs('d1') }, 0)).toMatchObject({ dialHost: 'hub.azure-devices.net', dialPort: undefined });
  });

  it('refuses X.509, modules and a deviceId that disagrees with the connection string', () => {
    const cases: Array<[string, string, RegExp]> = [
      ['d1', 'HostName=hub.azure-devices.net;DeviceId=d1;x509=true', /X\.509/],
      ['d1', cs('d1', ';ModuleId=m1'), /module/],
      ['d2', cs('d1'), /DeviceId "d1"/],
      ['d1', 'not a connection string', /HostName and DeviceId/],
    ];
    for (const [deviceId, connectionString, message] of cases) {
      let caught: unknown;
      try {
        parseIdentity({ deviceId, connectionString }, 4);
      } catch (err) {
        caught = err;
      }
      expect(isSwitchyardError(caught, 'CONFIG_INVALID')).toBe(true);
      expect((caught as Error).message).toMatch(message);
      expect((caught as Error).message).not.toContain(KEY);
    }
  });
});

describe('createGateway validation', () => {
  it('names the field and the fix', async () => {
    expect(await refusal({ maxIdentitiesPerConnection: 0 })).toMatchObject({ code: 'CONFIG_INVALID', field: 'maxIdentitiesPerConnection' });
    expect((await refusal({ maxIdentitiesPerConnection: 1000 })).message).toMatch(/999 tokens/);
    expect(await refusal({ tokenRenewal: { tokenValidTimeInSeconds: 10, tokenRenewalMarginInSeconds: 10 } })).toMatchObject({ field: 'tokenRenewal.tokenRenewalMarginInSeconds' });
    expect(await refusal({ endpoint: { host: '127.0.0.1', port: 70000 } })).toMatchObject({ field: 'endpoint.port' });
    expect(await refusal({ endpoint: { host: '127.0.0.1', ports: { https: 0 } } })).toMatchObject({ field: 'endpoint.ports.https' });
    expect(await refusal({ reconnect: { initialDelayMs: 5_000, maxDelayMs: 1_000 } })).toMatchObject({ field: 'reconnect.maxDelayMs' });
    expect(await refusal({ engine: 'tiny' as never })).toMatchObject({ code: 'CONFIG_INVALID', field: 'engine' });
    expect(await refusal({ identities: [{ deviceId: 'a', connectionString: cs('a') }, { deviceId: 'a', connectionString: cs('a') }] })).toMatchObject({
      field: 'identities[1].deviceId',
    });
  });

  it('accepts a valid configuration without connecting anything, multiplexed over AMQP by default', async () => {
    const gw = await createGateway({ env: {}, identities: [{ deviceId: 'a', connectionString: cs('a') }] });
    expect(gw.protocol).toBe('amqp');
    expect(gw.multiplexed).toBe(true);
    expect(gw.decision.multiplexed).toBe(true);
    expect(gw.connections()).toEqual([]);
    await gw.close();
  });
});

describe('protocol by configuration', () => {
  it('follows SWITCHYARD_PROTOCOL, and the option over the environment', async () => {
    const ws = await createGateway({ env: { SWITCHYARD_PROTOCOL: 'amqp-ws' } });
    expect([ws.protocol, ws.multiplexed, ws.decision.forced]).toEqual(['amqp-ws', true, true]);
    const amqp = await createGateway({ env: { SWITCHYARD_PROTOCOL: 'amqp-ws' }, protocol: 'amqp' });
    expect(amqp.protocol).toBe('amqp');
  });

  it('over MQTT, MQTT-WS or HTTPS uses one connection per identity and records that multiplexing was lost', async () => {
    for (const protocol of ['mqtt', 'mqtt-ws', 'https'] as const) {
      const gw = await createGateway({ env: { SWITCHYARD_PROTOCOL: protocol }, profile: { c2d: 'occasional', environment: 'development', pollIntervalSeconds: 5 } });
      expect(gw.protocol).toBe(protocol);
      expect(gw.multiplexed).toBe(false);
      expect(gw.decision.multiplexed).toBe(false);
      expect(gw.decision.warnings.join(' ')).toMatch(/multiplexing lost: .*one connection per identity/);
    }
  });

  it('takes MQTT from a profile that allows no AMQP, without forcing', async () => {
    const gw = await createGateway({ env: {}, profile: { protocols: ['mqtt', 'https'] } });
    expect(gw.protocol).toBe('mqtt');
    expect(gw.decision.forced).toBeUndefined();
    expect(gw.decision.warnings.join(' ')).toMatch(/multiplexing lost/);
  });

  it('still refuses a forced protocol the profile rules out for other reasons', async () => {
    const refused = await refusal({ protocol: 'https', profile: { c2d: 'latency-sensitive', features: ['telemetry', 'c2d'] } });
    expect(refused.code).toBe('PROTOCOL_REFUSED');
  });
});
