import { describe, expect, it } from 'vitest';
import { ERROR_CODES, SwitchyardError, isSwitchyardError, redactSecrets } from '../src/index.ts';

describe('SwitchyardError', () => {
  it('carries a stable code, the retryable default for it, and details in JSON', () => {
    const err = new SwitchyardError('CONNECT_FAILED', 'hub unreachable', { details: { protocol: 'mqtt' } });
    expect(err.retryable).toBe(ERROR_CODES.CONNECT_FAILED.retryable);
    expect(JSON.parse(JSON.stringify({ error: err }))).toEqual({
      error: { code: 'CONNECT_FAILED', message: 'hub unreachable', retryable: true, protocol: 'mqtt' },
    });
  });

  it('is recognised by brand, not by prototype, so duplicate package copies agree', () => {
    const foreign = Object.assign(new Error('x'), { code: 'AUTH_FAILED' });
    Object.defineProperty(foreign, Symbol.for('switchyard.error'), { value: true });
    expect(foreign instanceof SwitchyardError).toBe(true);
    expect(isSwitchyardError(foreign, 'AUTH_FAILED')).toBe(true);
    expect(isSwitchyardError(foreign, 'TIMEOUT')).toBe(false);
    expect(new Error('plain') instanceof SwitchyardError).toBe(false);
  });
});

describe('redactSecrets', () => {
  it('removes keys, signatures and private keys but keeps the rest readable', () => {
    const cs = 'HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=c2VjcmV0';
    const sas = 'SharedAccessSignature sr=h%2Fdevices%2Fd1&sig=abc%2Bdef%3D&se=1700000000';
    const pem = '-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----';
    const out = redactSecrets(`${cs} | ${sas} | ${pem}`);
    expect(out).not.toMatch(/c2VjcmV0|abc%2Bdef|MIIEv/);
    expect(out).toContain('DeviceId=d1');
    expect(out).toContain('se=1700000000');
  });
});
