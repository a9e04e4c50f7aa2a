import { createPrivateKey, X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer, type Server } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureTlsMaterial, issueDeviceCertificate, type TlsMaterial } from '../src/internal.ts';

const HOST = 'switchyard-local.azure-devices.net';
const dirs: string[] = [];
const servers: Server[] = [];

afterAll(async () => {
  await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-tls-'));
  dirs.push(dir);
  return dir;
}

async function serve(material: TlsMaterial, address: string): Promise<number> {
  const server = createServer({ cert: material.cert, key: material.key }, (s) => s.end());
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, address, resolve));
  const bound = server.address();
  if (typeof bound !== 'object' || !bound) throw new Error('no address');
  return bound.port;
}

/** Resolves with the verification error's code, or 'ok'. Verification stays on (`ca` only). */
function handshake(address: string, port: number, ca: string, servername?: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: address, port, ca, ...(servername ? { servername } : {}) }, () => {
      socket.destroy();
      resolve('ok');
    });
    socket.setTimeout(10_000, () => { socket.destroy(); resolve('timeout'); });
    socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? e.message));
  });
}

describe('TLS material', () => {
  it('generates a CA and server certificate in the state dir, keys private, and reuses them', () => {
    const dir = tempDir();
    const first = ensureTlsMaterial({ stateDir: dir, hostName: HOST, address: '127.0.0.1' });
    expect(first.caPath).toBe(join(dir, 'ca.pem'));
    expect(readFileSync(first.caPath!, 'utf8')).toBe(first.ca);
    for (const file of ['ca-key.pem', 'server-key.pem']) expect(statSync(join(dir, file)).mode & 0o777).toBe(0o600);
    const ca = new X509Certificate(first.ca);
    const server = new X509Certificate(first.cert);
    expect(ca.ca).toBe(true);
    expect(server.checkIssued(ca) && server.verify(ca.publicKey)).toBe(true);
    expect(server.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const again = ensureTlsMaterial({ stateDir: dir, hostName: HOST, address: '127.0.0.1' });
    expect(again.cert).toBe(first.cert);
    expect(again.ca).toBe(first.ca);
  });

  it('reissues only the server certificate when the address is not covered, keeping old names', () => {
    const dir = tempDir();
    const first = ensureTlsMaterial({ stateDir: dir, hostName: HOST, address: '127.0.0.1' });
    const moved = ensureTlsMaterial({ stateDir: dir, hostName: HOST, address: '127.0.0.3' });
    expect(moved.ca).toBe(first.ca);
    expect(moved.cert).not.toBe(first.cert);
    expect(moved.subjectAltNames).toEqual(expect.arrayContaining(['127.0.0.3', '127.0.0.1', 'localhost', HOST, '*.azure-devices.net']));
    // Any *.azure-devices.net name is already covered by the wildcard; another domain is not.
    expect(ensureTlsMaterial({ stateDir: dir, hostName: 'other-hub.azure-devices.net', address: '127.0.0.3' }).cert).toBe(moved.cert);
    const renamed = ensureTlsMaterial({ stateDir: dir, hostName: 'hub.example.test', address: '127.0.0.3' });
    expect(renamed.cert).not.toBe(moved.cert);
    expect(ensureTlsMaterial({ stateDir: dir, hostName: HOST, address: '127.0.0.3' }).cert).toBe(renamed.cert);
  });

  it('covers localhost, the loopback IP, the hub name and *.azure-devices.net, and nothing else', async () => {
    const material = ensureTlsMaterial({ hostName: HOST, address: '127.0.0.2' });
    expect(material.caPath).toBeUndefined();
    const port = await serve(material, '127.0.0.2');
    const results = await Promise.all([
      handshake('127.0.0.2', port, material.ca),
      handshake('127.0.0.2', port, material.ca, 'localhost'),
      handshake('127.0.0.2', port, material.ca, HOST),
      handshake('127.0.0.2', port, material.ca, 'some-other-hub.azure-devices.net'),
      handshake('127.0.0.2', port, material.ca, 'example.com'),
      handshake('127.0.0.2', port, ensureTlsMaterial({ stateDir: tempDir(), hostName: HOST, address: '127.0.0.2' }).ca, HOST),
    ]);
    expect(results).toEqual(['ok', 'ok', 'ok', 'ok', 'ERR_TLS_CERT_ALTNAME_INVALID', 'UNABLE_TO_VERIFY_LEAF_SIGNATURE']);
    // The in-memory CA is cached per process; a second hub trusts the same CA.
    expect(ensureTlsMaterial({ hostName: HOST, address: '127.0.0.1' }).ca).toBe(material.ca);
  });

  it('issues self-signed device certificates with CN=deviceId and matching thumbprints', () => {
    const device = issueDeviceCertificate('sensor-7');
    const cert = new X509Certificate(device.cert);
    expect(cert.subject).toBe('CN=sensor-7');
    expect(cert.fingerprint.replace(/:/g, '')).toBe(device.thumbprint);
    expect(cert.fingerprint256.replace(/:/g, '')).toBe(device.thumbprint256);
    expect(cert.checkPrivateKey(createPrivateKey(device.key))).toBe(true);
  });
});


describe('certificate signatures', () => {
  it('the CA signs itself, the server and device certificates verify, each with a key matching its certificate', () => {
    const material = ensureTlsMaterial({ hostName: HOST, address: '127.0.0.1' });
    const ca = new X509Certificate(material.ca);
    const server = new X509Certificate(material.cert);
    expect(ca.verify(ca.publicKey)).toBe(true);
    expect(server.verify(ca.publicKey)).toBe(true);
    expect(server.checkPrivateKey(createPrivateKey(material.key))).toBe(true);
    expect(server.publicKey.asymmetricKeyDetails).toMatchObject({ modulusLength: 2048 });
    expect(ca.publicKey.equals(server.publicKey)).toBe(false);
    const device = issueDeviceCertificate('sig-device');
    const deviceCert = new X509Certificate(device.cert);
    expect(deviceCert.verify(deviceCert.publicKey)).toBe(true);
    expect(deviceCert.checkPrivateKey(createPrivateKey(device.key))).toBe(true);
  });
});
