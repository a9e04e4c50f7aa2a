// What a failed operation hands the application, printed the way applications print errors
// (`console.log(err)`, a logger's JSON): no SAS token, no private key, at any depth. The real
// HTTPS transport attaches its request (Authorization header) and, for X.509, its TLS options.
import { inspect } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { connect } from '../src/index.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

const printed = (err: unknown): string => [inspect(err, { depth: Infinity, showHidden: true }), JSON.stringify(err)].join('\n');
const profile = { features: ['telemetry'] } as const;

async function failedSend(deviceId: string, extra: { cert?: string; key?: string } = {}): Promise<unknown> {
  const { client } = await connect({
    connectionString: extra.cert ? `HostName=${hub.hostName};DeviceId=${deviceId};x509=true` : hub.deviceConnectionString(deviceId, { protocol: 'https' }),
    ...extra,
    ca: hub.ca,
    endpoint: { host: hub.address, ports: hub.ports },
    forceProtocol: 'https',
    profile,
  });
  try {
    await client.sendEvent({ body: 'before' });
    hub.removeDevice(deviceId);
    return await client.sendEvent({ body: 'after' }).then(() => undefined, (err: unknown) => err);
  } finally {
    await client.close();
  }
}

describe('errors from a real HTTPS failure', () => {
  it('carry no SAS token (the request\'s Authorization header) in any field or cause', async () => {
    hub.createDevice('secret-sas');
    const err = await failedSend('secret-sas');
    expect(err).toBeDefined();
    const text = printed(err);
    expect(text).toMatch(/DEVICE_NOT_FOUND|AUTH_FAILED/);
    expect(text).not.toMatch(/sig=(?!<redacted>)[A-Za-z0-9%]/);
    expect(text.toLowerCase()).not.toContain('authorization');
  });

  it('carry no private key of an X.509 device', async () => {
    const { cert, key, thumbprint } = hub.issueDeviceCertificate('secret-x509');
    hub.createDevice('secret-x509', { authentication: { type: 'x509-thumbprint', primaryThumbprint: thumbprint } });
    const err = await failedSend('secret-x509', { cert, key });
    expect(err).toBeDefined();
    const body = key.split('\n').slice(1, -2).join('');
    const text = printed(err).replace(/\\n|\s/g, '');
    expect(text).not.toContain(body.slice(0, 40));
  });
});
