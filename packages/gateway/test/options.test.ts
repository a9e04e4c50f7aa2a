// The pure parts: where an identity goes in the pool, and what options are refused and why.
import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { chooseConnection, createGateway, parseIdentity, type GatewayOptions } from '../src/index.ts';

const KEY = Buffer.alloc(32, 1).toString('base64');
const cs = (deviceId: string, extra = ''): string => `HostName=hub.azure-devices.net;DeviceId=${deviceId};SharedAccessKey=${KEY}${extra}`;

function refusal(options: GatewayOptions): { code: string; field: unknown; message: string } {
  try {
    createGateway(options);
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
  it('refuses protocols that cannot multiplex', () => {
    expect(refusal({ protocol: 'mqtt' as never })).toMatchObject({ code: 'PROTOCOL_REFUSED', field: 'protocol' });
  });

  it('names the field and the fix', () => {
    expect(refusal({ maxIdentitiesPerConnection: 0 })).toMatchObject({ code: 'CONFIG_INVALID', field: 'maxIdentitiesPerConnection' });
    expect(refusal({ maxIdentitiesPerConnection: 1000 }).message).toMatch(/999 tokens/);
    expect(refusal({ tokenRenewal: { tokenValidTimeInSeconds: 10, tokenRenewalMarginInSeconds: 10 } })).toMatchObject({ field: 'tokenRenewal.tokenRenewalMarginInSeconds' });
    expect(refusal({ endpoint: { host: '127.0.0.1', port: 70000 } })).toMatchObject({ field: 'endpoint.port' });
    expect(refusal({ identities: [{ deviceId: 'a', connectionString: cs('a') }, { deviceId: 'a', connectionString: cs('a') }] })).toMatchObject({
      field: 'identities[1].deviceId',
    });
  });

  it('accepts a valid configuration without connecting anything', async () => {
    const gw = createGateway({ identities: [{ deviceId: 'a', connectionString: cs('a') }] });
    expect(gw.protocol).toBe('amqp');
    expect(gw.connections()).toEqual([]);
    await gw.close();
  });
});
