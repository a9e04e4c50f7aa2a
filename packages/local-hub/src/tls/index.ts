import { createHash, generateKeyPairSync, randomBytes, sign, X509Certificate } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import forge from 'node-forge';
import { SwitchyardError } from '@switchyard/errors';

export interface TlsMaterial {
  /** PEM of the local CA: what clients pass as `ca`. */
  ca: string;
  /** PEM chain presented by the listeners (server certificate). */
  cert: string;
  key: string;
  /** Where `ca` lives on disk; undefined for in-memory hubs. */
  caPath: string | undefined;
  /** DNS and IP names the server certificate covers. */
  subjectAltNames: string[];
}

export interface DeviceCertificate {
  cert: string;
  key: string;
  /** SHA-1 of the DER, upper-case hex: what IoT Hub calls the thumbprint. */
  thumbprint: string;
  thumbprint256: string;
}

const CA_FILE = 'ca.pem';
const CA_KEY_FILE = 'ca-key.pem';
const SERVER_FILE = 'server.pem';
const SERVER_KEY_FILE = 'server-key.pem';
const DAY_MS = 24 * 3600 * 1000;
// Renew the server certificate well before it lapses, so a long-lived state dir never serves an
// expired one.
const RENEW_BEFORE_MS = 30 * DAY_MS;

interface CaMaterial { cert: string; key: string }

// forge builds the certificates; the RSA arithmetic is Node's. forge's own key generation and
// signing run on JavaScript big numbers: ~100x slower, and most of a fresh hub's start-up.
function rsaKeyPair(): { publicKey: forge.pki.PublicKey; privatePem: string } {
  const { publicKey, privateKey } = generateKeyPairSync('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
  return { publicKey: forge.pki.publicKeyFromPem(publicKey), privatePem: privateKey };
}

/** What forge's `cert.sign(key, sha256)` does, with the signature computed natively. */
function signSha256(cert: forge.pki.Certificate, signerKeyPem: string): void {
  const oid = forge.pki.oids['sha256WithRSAEncryption']!;
  cert.signatureOid = oid;
  cert.siginfo.algorithmOid = oid;
  // The signed structure names the algorithm, so it is built after the OIDs are set; forge's
  // encoder reuses it rather than building it again.
  // getTBSCertificate is public in forge but missing from its typings.
  const tbs = (forge.pki as typeof forge.pki & { getTBSCertificate(c: forge.pki.Certificate): forge.asn1.Asn1 }).getTBSCertificate(cert);
  (cert as forge.pki.Certificate & { tbsCertificate: forge.asn1.Asn1 }).tbsCertificate = tbs;
  const der = Buffer.from(forge.asn1.toDer(tbs).getBytes(), 'binary');
  cert.signature = sign('sha256', der, signerKeyPem).toString('binary');
}

function serialNumber(): string {
  // Positive (top bit clear) 16-byte serial, as RFC 5280 asks.
  const bytes = randomBytes(16);
  bytes[0] = bytes[0]! & 0x7f;
  return bytes.toString('hex');
}

function validity(cert: forge.pki.Certificate, days: number): void {
  const now = Date.now();
  // Backdate an hour so clients with slightly skewed clocks accept a fresh certificate.
  cert.validity.notBefore = new Date(now - 3600 * 1000);
  cert.validity.notAfter = new Date(now + days * DAY_MS);
}

function createCa(): CaMaterial {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, 3650);
  const subject = [{ name: 'commonName', value: 'Switchyard Local IoT Hub CA' }, { name: 'organizationName', value: 'Switchyard (local development only)' }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: true, critical: true },
    { name: 'keyUsage', keyCertSign: true, cRLSign: true, critical: true },
    { name: 'subjectKeyIdentifier' },
  ]);
  signSha256(cert, keys.privatePem);
  return { cert: forge.pki.certificateToPem(cert), key: keys.privatePem };
}

function requiredNames(hostName: string, address: string): string[] {
  return [...new Set(['localhost', '127.0.0.1', hostName.toLowerCase(), '*.azure-devices.net', address])];
}

function createServerCert(ca: CaMaterial, names: string[]): { cert: string; key: string } {
  const caCert = forge.pki.certificateFromPem(ca.cert);
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, 397);
  cert.setSubject([{ name: 'commonName', value: names.find((n) => !isIP(n) && !n.startsWith('*')) ?? 'localhost' }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true },
    { name: 'subjectAltName', altNames: names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
    { name: 'subjectKeyIdentifier' },
    { name: 'authorityKeyIdentifier', keyIdentifier: caCert.generateSubjectKeyIdentifier().getBytes() },
  ]);
  signSha256(cert, ca.key);
  return { cert: forge.pki.certificateToPem(cert), key: keys.privatePem };
}

/** Whether `certPem` is signed by `caPem`, unexpired for a while yet, and names every host in `names`. */
function serverCertUsable(certPem: string, caPem: string, names: string[]): boolean {
  try {
    const cert = new X509Certificate(certPem);
    const ca = new X509Certificate(caPem);
    if (!cert.verify(ca.publicKey) || !cert.checkIssued(ca)) return false;
    if (Date.parse(cert.validTo) - Date.now() < RENEW_BEFORE_MS) return false;
    return names.every((n) => (isIP(n) ? cert.checkIP(n) !== undefined : cert.checkHost(n) !== undefined || cert.subjectAltName?.split(', ').includes(`DNS:${n}`)));
  } catch {
    return false;
  }
}

function existingNames(certPem: string): string[] {
  try {
    const san = new X509Certificate(certPem).subjectAltName ?? '';
    return san.split(', ').map((entry) => entry.replace(/^(DNS|IP Address):/, '')).filter((n) => n !== '' && !n.includes(':'));
  } catch {
    return [];
  }
}

function caUsable(caPem: string): boolean {
  try {
    const ca = new X509Certificate(caPem);
    return ca.ca && Date.parse(ca.validTo) - Date.now() > RENEW_BEFORE_MS;
  } catch {
    return false;
  }
}

// Written via rename so a hub killed mid-write leaves the old file or the new one, never half.
function writeAtomic(path: string, content: string, mode: number): void {
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, content, { mode });
  chmodSync(tmp, mode);
  renameSync(tmp, path);
}

let processCa: CaMaterial | undefined;
const processServerCerts = new Map<string, { cert: string; key: string }>();

/**
 * The hub's CA and server certificate. With a state dir they are kept there (`ca.pem`,
 * `ca-key.pem`, `server.pem`, `server-key.pem`; keys mode 0600) and reused; the server certificate
 * (never the CA, which clients may have stored) is reissued when it no longer covers the host
 * name or address. Without one they are cached for the life of the process.
 */
export function ensureTlsMaterial(options: { stateDir?: string; hostName: string; address: string }): TlsMaterial {
  const names = requiredNames(options.hostName, options.address);
  if (options.stateDir === undefined) {
    processCa ??= createCa();
    const cacheKey = names.join(',');
    let server = processServerCerts.get(cacheKey);
    if (!server) {
      server = createServerCert(processCa, names);
      processServerCerts.set(cacheKey, server);
    }
    return { ca: processCa.cert, cert: server.cert, key: server.key, caPath: undefined, subjectAltNames: names };
  }

  const dir = options.stateDir;
  try {
    mkdirSync(dir, { recursive: true });
    const caPath = join(dir, CA_FILE);
    const caKeyPath = join(dir, CA_KEY_FILE);
    let ca: CaMaterial | undefined;
    if (existsSync(caPath) && existsSync(caKeyPath)) {
      const loaded = { cert: readFileSync(caPath, 'utf8'), key: readFileSync(caKeyPath, 'utf8') };
      if (caUsable(loaded.cert)) ca = loaded;
    }
    let caRenewed = false;
    if (!ca) {
      ca = createCa();
      writeAtomic(caKeyPath, ca.key, 0o600);
      writeAtomic(caPath, ca.cert, 0o644);
      caRenewed = true;
    }
    const serverPath = join(dir, SERVER_FILE);
    const serverKeyPath = join(dir, SERVER_KEY_FILE);
    let server: { cert: string; key: string } | undefined;
    let sans = names;
    if (!caRenewed && existsSync(serverPath) && existsSync(serverKeyPath)) {
      const loaded = { cert: readFileSync(serverPath, 'utf8'), key: readFileSync(serverKeyPath, 'utf8') };
      if (serverCertUsable(loaded.cert, ca.cert, names)) server = loaded;
      // A reissued certificate keeps the names the old one had, so alternating between two
      // addresses does not reissue on every start.
      else sans = [...new Set([...names, ...existingNames(loaded.cert)])];
    }
    if (!server) {
      server = createServerCert(ca, sans);
      writeAtomic(serverKeyPath, server.key, 0o600);
      writeAtomic(serverPath, server.cert, 0o644);
    }
    return { ca: ca.cert, cert: server.cert, key: server.key, caPath, subjectAltNames: existingNames(server.cert) };
  } catch (cause) {
    throw new SwitchyardError('STATE_FAILED', `Cannot create or read the hub's TLS material in ${dir}: ${(cause as Error).message}. Check that the directory is writable, or delete its *.pem files to regenerate them.`, { cause, details: { field: 'stateDir' } });
  }
}

/**
 * A self-signed client certificate with CN=deviceId, for devices registered by thumbprint. IoT
 * Hub does not chain-check thumbprint devices, so no CA is involved.
 */
export function issueDeviceCertificate(deviceId: string, options: { validityDays?: number } = {}): DeviceCertificate {
  const keys = rsaKeyPair();
  const cert = forge.pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serialNumber();
  validity(cert, options.validityDays ?? 365);
  const subject = [{ name: 'commonName', value: deviceId }];
  cert.setSubject(subject);
  cert.setIssuer(subject);
  cert.setExtensions([
    { name: 'basicConstraints', cA: false },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', clientAuth: true },
  ]);
  signSha256(cert, keys.privatePem);
  const der = Buffer.from(forge.asn1.toDer(forge.pki.certificateToAsn1(cert)).getBytes(), 'binary');
  return {
    cert: forge.pki.certificateToPem(cert),
    key: keys.privatePem,
    thumbprint: createHash('sha1').update(der).digest('hex').toUpperCase(),
    thumbprint256: createHash('sha256').update(der).digest('hex').toUpperCase(),
  };
}
