// The HTTPS agent's pool name: the same value Node computes, built once per distinct set of the
// options it is made of, and a new one the moment any of them differs (so requests with other TLS
// material never share a socket). The pool itself over real TLS is covered by every HTTPS e2e.
import https from 'node:https';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { HttpsAgent } from '../src/https-agent.ts';

const CA = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(1200)}\n-----END CERTIFICATE-----\n`;
const base = { host: 'hub.azure-devices.net', port: 443, servername: 'hub.azure-devices.net', ca: CA, rejectUnauthorized: true };
const nodeName = (options: https.RequestOptions): string => https.Agent.prototype.getName.call(new https.Agent(), options);

describe('HttpsAgent.getName', () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it('returns what https.Agent would, building it once for requests with the same options', () => {
    const agent = new HttpsAgent({ keepAlive: true });
    const expected = nodeName(base);
    const built = vi.spyOn(https.Agent.prototype, 'getName');
    const first = agent.getName({ ...base, path: '/a', method: 'POST', headers: { a: '1' } });
    expect(first).toBe(expected);
    expect(first).toContain(CA);
    // Each request brings a fresh options object (path, headers) with the same values.
    for (let i = 0; i < 5; i++) expect(agent.getName({ ...base, path: `/b${i}`, method: 'GET', headers: { b: String(i) } })).toBe(first);
    expect(built).toHaveBeenCalledTimes(1);
  });

  it('computes a new name when any option Node names the pool by differs', () => {
    const agent = new HttpsAgent({ keepAlive: true });
    const first = agent.getName(base);
    const variants: https.RequestOptions[] = [
      { ...base, host: 'other.azure-devices.net' },
      { ...base, port: 8443 },
      { ...base, ca: `${CA}x` },
      { ...base, cert: 'CERT' },
      { ...base, key: 'KEY' },
      { ...base, rejectUnauthorized: undefined },
      { ...base, servername: 'gateway.local' },
      { ...base, minVersion: 'TLSv1.3' },
      { ...base, family: 6 },
    ];
    for (const options of variants) {
      const name = agent.getName(options);
      expect(name).toBe(nodeName(options));
      expect(name).not.toBe(first);
    }
    // And back: the original options give the original name again.
    expect(agent.getName(base)).toBe(first);
  });

  it('treats missing options as Node does', () => {
    const agent = new HttpsAgent();
    expect(agent.getName()).toBe(nodeName({}));
    expect(agent.getName({})).toBe(nodeName({}));
  });
});
