// The handshake and pre-authentication deadlines on every port, with small limits so nothing
// waits real seconds: each test waits for the hub to close the socket, never for a clock. Plus
// the limits' validation and the wire-safe logger.
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLogger, startLocalHub, type HubLogger, type LocalHub } from '../src/index.ts';
import { perSourceCapFor, resolveLimits } from '../src/limits.ts';
import { wireSafeLogger, wireText } from '../src/log-safety.ts';
import { tlsPipe, within, wsPipe } from './support/hardening.ts';

const SHORT = 300;

describe('deadlines for peers that never authenticate', () => {
  let hub: LocalHub;
  const logger = createMemoryLogger();

  beforeAll(async () => {
    hub = await startLocalHub({ inMemory: true, logger, limits: { tlsHandshakeTimeoutMs: SHORT, preAuthTimeoutMs: SHORT } });
  });
  afterAll(async () => {
    await hub?.close();
  });

  it.each(['mqtt', 'amqp', 'https'] as const)('closes a %s socket that sends half a ClientHello and stops', async (port) => {
    const socket = connect({ host: hub.address, port: hub.ports[port] });
    socket.on('error', () => undefined);
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    // A TLS record header promising 512 bytes of handshake, and only part of it.
    socket.write(Buffer.from('1603010200010001fc0303', 'hex'));
    await within(closed, 10_000, 'hub closes the half handshake');
  });

  it.each(['mqtt', 'amqp', 'https'] as const)('closes a %s connection that finishes TLS and then says nothing', async (port) => {
    const pipe = await tlsPipe(hub, hub.ports[port]);
    await within(pipe.closed, 10_000, 'hub closes the silent connection');
  });

  it('closes an AMQP connection that opens but never authenticates', async () => {
    const pipe = await tlsPipe(hub, hub.ports.amqp);
    // Plain AMQP header and an open frame, then silence: no CBS put-token, no X.509 identity.
    await pipe.write(Buffer.from('414d515000010000', 'hex'));
    const open = Buffer.from('0000001c02000000005310c00f01a10c73696c656e742d706565723f', 'hex');
    open.writeUInt32BE(open.length, 0);
    await pipe.write(open);
    await within(pipe.closed, 10_000, 'hub closes the unauthenticated connection');
    expect(logger.entries.some((e) => e.message === 'amqp connection closed: not authenticated in time')).toBe(true);
  });

  it.each(['mqtt', 'AMQPWSB10'] as const)('closes a %s WebSocket that never authenticates', async (protocol) => {
    const pipe = await wsPipe(hub, protocol);
    await within(pipe.closed, 10_000, 'hub closes the silent WebSocket');
  });
});

describe('hub limits', () => {
  it('fills defaults and refuses values out of range, naming the field', () => {
    expect(resolveLimits()).toMatchObject({ maxFrameBytes: 262_144, tlsHandshakeTimeoutMs: 10_000, preAuthTimeoutMs: 30_000 });
    expect(() => resolveLimits({ maxFrameBytes: 100 })).toThrow(/limits\.maxFrameBytes/);
    expect(() => resolveLimits({ maxConnectionsPerSource: 0 })).toThrow(/limits\.maxConnectionsPerSource/);
    expect(() => resolveLimits({ preAuthTimeoutMs: 1.5 })).toThrow(/limits\.preAuthTimeoutMs/);
  });

  it('gives one source at most half the descriptors, within 64 and 4,096', () => {
    expect(perSourceCapFor(1024)).toBe(512);
    expect(perSourceCapFor(100)).toBe(64);
    expect(perSourceCapFor(1_048_576)).toBe(4096);
    expect(perSourceCapFor(undefined)).toBe(512);
  });

  it('refuses to start with an invalid limit', async () => {
    await expect(startLocalHub({ inMemory: true, limits: { maxArrayElements: -1 } })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'limits.maxArrayElements' } });
  });
});

describe('wire-derived text in logs', () => {
  it('is redacted, cut and cannot forge lines, whatever sink the caller passed', () => {
    const lines: Array<{ message: string; fields: Record<string, unknown> | undefined }> = [];
    const raw: HubLogger = { info: (message, fields) => lines.push({ message, fields }), warn: (message, fields) => lines.push({ message, fields }) };
    const logger = wireSafeLogger(raw);
    logger.warn('refused', { what: 'SUBSCRIBE a\n{"level":"info","message":"forged"}', why: 'SharedAccessSignature sr=h&sig=SECRET&se=1', nested: { token: 'x SharedAccessKey=KEY;' }, long: 'x'.repeat(10_000), count: 3 });
    const fields = lines[0]!.fields!;
    expect(JSON.stringify(fields)).not.toMatch(/SECRET|KEY;/);
    expect(String(fields['what'])).not.toContain('\n');
    expect(String(fields['long']).length).toBeLessThan(2_100);
    expect(fields['count']).toBe(3);
    expect(wireText('a\u2028b')).toBe('a\\u2028b');
  });

  it('reaches a caller-supplied logger only after redaction', async () => {
    const seen: string[] = [];
    const rawValues: unknown[] = [];
    const record = (m: string, f?: Record<string, unknown>): void => {
      seen.push(JSON.stringify([m, f]));
      rawValues.push(m, ...Object.values(f ?? {}));
    };
    const sink: HubLogger = { info: record, warn: record };
    const hub = await startLocalHub({ inMemory: true, logger: sink });
    try {
      // A device id from the path, chosen by the peer, lands in the refusal's log line.
      const socket = await tlsPipe(hub, hub.ports.https);
      let response = '';
      socket.onData((chunk) => { response += chunk.toString('latin1'); });
      await socket.write(Buffer.from('POST /devices/%20sig%3DTOPSECRET%0Aforged/messages/events?api-version=2021-04-12 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', 'latin1'));
      await within(socket.closed, 10_000, 'request answered');
      expect(response).toMatch(/^HTTP\/1\.1 401 /);
      expect(seen.some((line) => line.includes('refused') && line.includes('<redacted>'))).toBe(true);
      expect(seen.join('\n')).not.toContain('TOPSECRET');
      // The decoded %0A would let a plain-text sink print a forged line.
      expect(rawValues.filter((v) => typeof v === 'string' && /[\n\r]/.test(v))).toEqual([]);
    } finally {
      await hub.close();
    }
  });
});
