import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHubCore, createMemoryLogger, createSasToken, ManualClock, openHubStore, type LocalHubCore } from '../src/internal.ts';

const HOST = 'unit-hub.azure-devices.net';
const NOW = Date.UTC(2026, 0, 1);
const clock = new ManualClock(NOW);
let core: LocalHubCore;
let logger: ReturnType<typeof createMemoryLogger>;
let primary: string;
let secondary: string;

beforeEach(() => {
  logger = createMemoryLogger();
  core = createHubCore({ hostName: HOST, alternateHostNames: ['localhost', '127.0.0.1', '127.0.0.7'], store: openHubStore({ inMemory: true }), logger, clock });
  const device = core.createDevice('dev-1');
  if (device.authentication.type !== 'sas') throw new Error('expected SAS');
  primary = device.authentication.primaryKey;
  secondary = device.authentication.secondaryKey;
  core.createDevice('off', { status: 'disabled' });
});

afterEach(() => core.close());

const inAnHour = NOW / 1000 + 3600;

describe('device SAS tokens', () => {
  const cases: Array<{ name: string; token: () => string; deviceId?: string; ok?: true; reason?: string }> = [
    { name: 'good token, primary key', token: () => createSasToken(`${HOST}/devices/dev-1`, primary, inAnHour), ok: true },
    { name: 'secondary key', token: () => createSasToken(`${HOST}/devices/dev-1`, secondary, inAnHour), ok: true },
    { name: 'localhost with a port in the audience', token: () => createSasToken('localhost:18883/devices/dev-1', primary, inAnHour), ok: true },
    { name: 'the bind address with a port', token: () => createSasToken('127.0.0.7:443/devices/dev-1', primary, inAnHour), ok: true },
    { name: 'wrong key', token: () => createSasToken(`${HOST}/devices/dev-1`, Buffer.alloc(32, 7).toString('base64'), inAnHour), reason: 'bad-signature' },
    { name: 'expired', token: () => createSasToken(`${HOST}/devices/dev-1`, primary, NOW / 1000 - 1), reason: 'expired' },
    { name: 'expires exactly now', token: () => createSasToken(`${HOST}/devices/dev-1`, primary, NOW / 1000), reason: 'expired' },
    { name: 'another device in the audience', token: () => createSasToken(`${HOST}/devices/dev-2`, primary, inAnHour), reason: 'wrong-audience' },
    { name: 'a foreign hub in the audience', token: () => createSasToken('other.azure-devices.net/devices/dev-1', primary, inAnHour), reason: 'wrong-audience' },
    { name: 'not a SAS token', token: () => 'Bearer abc', reason: 'malformed' },
    { name: 'missing se', token: () => createSasToken(`${HOST}/devices/dev-1`, primary, inAnHour).replace(/&se=\d+/, ''), reason: 'malformed' },
    { name: 'non-numeric se', token: () => createSasToken(`${HOST}/devices/dev-1`, primary, inAnHour).replace(/se=\d+/, 'se=soon'), reason: 'malformed' },
    { name: 'bad percent-encoding', token: () => `SharedAccessSignature sr=%E0%A4%A&sig=abc&se=${inAnHour}`, reason: 'malformed' },
    { name: 'policy token for a device', token: () => createSasToken(`${HOST}/devices/dev-1`, primary, inAnHour, 'iothubowner'), reason: 'wrong-credential-type' },
    { name: 'disabled device', deviceId: 'off', token: () => createSasToken(`${HOST}/devices/off`, primary, inAnHour), reason: 'disabled' },
    { name: 'unknown device', deviceId: 'ghost', token: () => createSasToken(`${HOST}/devices/ghost`, primary, inAnHour), reason: 'unknown-device' },
  ];

  it.each(cases)('$name', ({ token, deviceId, ok, reason }) => {
    const result = core.authenticateSas(deviceId ?? 'dev-1', token());
    if (ok) {
      expect(result).toEqual({ ok: true, deviceId: deviceId ?? 'dev-1', expiresAt: inAnHour * 1000 });
    } else {
      expect(result).toMatchObject({ ok: false, reason });
    }
  });

  it('counts failures and never logs the signature', () => {
    const token = createSasToken(`${HOST}/devices/dev-1`, Buffer.alloc(32, 9).toString('base64'), inAnHour);
    core.authenticateSas('dev-1', token);
    expect(core.counters('dev-1').authFailures).toBe(1);
    const sig = /sig=([^&]+)/.exec(token)![1]!;
    expect(JSON.stringify(logger.entries)).not.toContain(decodeURIComponent(sig));
    expect(logger.entries.some((e) => e.level === 'warn' && e.fields['reason'] === 'bad-signature')).toBe(true);
  });
});

describe('service SAS tokens', () => {
  it('accepts iothubowner and refuses the rest', () => {
    expect(core.authenticateService(core.serviceToken())).toEqual({ ok: true, policy: 'iothubowner' });
    expect(core.authenticateService(createSasToken(HOST, core.serviceKey, inAnHour, 'iothubowner'))).toEqual({ ok: true, policy: 'iothubowner' });
    expect(core.authenticateService(createSasToken(HOST, core.serviceKey, NOW / 1000 - 5, 'iothubowner')).ok).toBe(false);
    expect(core.authenticateService(createSasToken(HOST, primary, inAnHour, 'iothubowner')).ok).toBe(false);
    expect(core.authenticateService(createSasToken(HOST, core.serviceKey, inAnHour, 'registryRead')).ok).toBe(false);
    expect(core.authenticateService(createSasToken('evil.example', core.serviceKey, inAnHour, 'iothubowner')).ok).toBe(false);
    expect(core.authenticateService(createSasToken(`${HOST}/devices/dev-1`, primary, inAnHour)).ok).toBe(false);
  });
});

describe('X.509 thumbprints', () => {
  it('matches SHA-1 or SHA-256, any case or colon form, primary or secondary', () => {
    const sha1 = 'ab'.repeat(20);
    const sha256 = 'CD'.repeat(32);
    core.createDevice('cam', { authentication: { type: 'x509-thumbprint', primaryThumbprint: sha1, secondaryThumbprint: sha256 } });
    expect(core.authenticateX509('cam', sha1.toUpperCase().match(/../g)!.join(':')).ok).toBe(true);
    expect(core.authenticateX509('cam', sha256.toLowerCase()).ok).toBe(true);
    expect(core.authenticateX509('cam', ['00'.repeat(20), sha256]).ok).toBe(true);
    expect(core.authenticateX509('cam', '11'.repeat(20))).toMatchObject({ ok: false, reason: 'bad-signature' });
    expect(core.authenticateX509('dev-1', sha1)).toMatchObject({ ok: false, reason: 'wrong-credential-type' });
    expect(core.authenticateSas('cam', createSasToken(`${HOST}/devices/cam`, primary, inAnHour))).toMatchObject({ ok: false, reason: 'wrong-credential-type' });
  });
});
