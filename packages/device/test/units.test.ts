// Pure logic: option validation, error translation, the transport dispatch table, messages, routes.
import { describe, expect, it } from 'vitest';
import azureCommon from 'azure-iot-common';
import { isSwitchyardError } from '@switchyard/errors';
import { TRANSPORTS, connect, loadTransport, parseConnectOptions, parseConnectionString, translateError } from '../src/internal.ts';
import { fromAzureMessage, toAzureMessage } from '../src/message.ts';
import { routeFor, withGatewayHostName } from '../src/endpoint.ts';

const CS = 'HostName=hub.azure-devices.net;DeviceId=dev1;SharedAccessKey=c2VjcmV0c2VjcmV0c2VjcmV0c2VjcmV0';

function caught(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error('expected a throw');
}

describe('connect() option validation names the field', () => {
  it.each([
    [{}, 'connectionString'],
    [{ connectionString: CS, endpoint: { ports: { mqtt: 70000 } } }, 'endpoint.ports.mqtt'],
    [{ connectionString: CS, forceProtocol: 'http' }, 'forceProtocol'],
    [{ connectionString: CS, fallback: 'yes' }, 'fallback'],
    [{ connectionString: CS, pollIntervalSeconds: 5 }, 'pollIntervalSeconds'],
    [{ connectionString: CS, tokenRenewal: { tokenValidTimeInSeconds: 10, tokenRenewalMarginInSeconds: 20 } }, 'tokenRenewal'],
    [{ connectionString: CS, clock: { now: 1 } }, 'clock'],
    [{ connectionString: 'HostName=h;SharedAccessKey=abc' }, 'connectionString'],
    [{ connectionString: 'HostName=h;DeviceId=d;x509=true' }, 'cert'],
    [{ connectionString: 'HostName=h;DeviceId=d;x509=true', cert: 'C' }, 'key'],
    [{ connectionString: CS, cert: 'C', key: 'K' }, 'cert'],
    [{ connectionString: 'HostName=h;DeviceId=d' }, 'connectionString'],
  ])('%j → %s', (input, field) => {
    const error = caught(() => parseConnectOptions(input));
    expect(isSwitchyardError(error, 'CONFIG_INVALID')).toBe(true);
    expect((error as { details: { field: string } }).details.field).toBe(field);
    expect((error as Error).message).toContain(field === 'connectionString' ? 'connectionString' : field.split('.')[0]!);
  });

  it('never echoes the key of a connection string it refuses', () => {
    const error = caught(() => parseConnectOptions({ connectionString: 'HostName=h;SharedAccessKey=TOPSECRET;bogus' }));
    expect((error as Error).message).not.toContain('TOPSECRET');
  });

  it('fills defaults', () => {
    const o = parseConnectOptions({ connectionString: CS });
    expect(o).toMatchObject({ fallback: false, operationTimeoutMs: 30_000, connectTimeoutMs: 20_000, reconnectAttempts: 10, connection: { hostName: 'hub.azure-devices.net', deviceId: 'dev1', auth: 'sas-key' } });
  });

  it('needs a profile from the option or SWITCHYARD_PROFILE', async () => {
    await expect(connect({ connectionString: CS }, { env: {} })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'profile' } });
  });

  it('lets options win over a broken SWITCHYARD_PROFILE / SWITCHYARD_PROTOCOL', async () => {
    const env = { SWITCHYARD_PROFILE: '/nonexistent/profile.json', SWITCHYARD_PROTOCOL: 'carrier-pigeon' };
    await expect(connect({ connectionString: CS }, { env })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'SWITCHYARD_PROTOCOL' } });
    await expect(connect({ connectionString: CS, forceProtocol: 'mqtt' }, { env })).rejects.toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'profile', file: '/nonexistent/profile.json' } });
    // With both given, the environment is not consulted: the profile refuses the forced protocol.
    await expect(connect({ connectionString: CS, forceProtocol: 'https', profile: { features: ['twin'] } }, { env })).rejects.toMatchObject({ code: 'PROTOCOL_REFUSED' });
  });

  it('reports a forced protocol the profile cannot serve (SWITCHYARD_PROTOCOL)', async () => {
    await expect(connect({ connectionString: CS, profile: { features: ['twin'] } }, { env: { SWITCHYARD_PROTOCOL: 'https' } })).rejects.toMatchObject({ code: 'PROTOCOL_REFUSED' });
  });
});

describe('translateError', () => {
  const { errors } = azureCommon;
  it('says "could not reach the hub" only when it was not reached, not of a link the hub detached', () => {
    const detached = translateError(new errors.ServiceUnavailableError('AMQP link /devices/d/messages/events detached by the hub'), { protocol: 'amqp', operation: 'connection' });
    expect(detached.message).toContain('detached by the hub');
    expect(detached.message).not.toContain('could not reach');
    const refused = translateError(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), { protocol: 'mqtt', operation: 'sendEvent' });
    expect(refused.message).toContain('could not reach the hub (connect ECONNREFUSED 127.0.0.1:1)');
    expect(translateError(new errors.NotConnectedError('rhea: connection disconnected'), { protocol: 'amqp', operation: 'connect' }).message).toContain('could not reach the hub');
  });
  it.each([
    [new errors.UnauthorizedError('Not authorized'), 'AUTH_FAILED'],
    [new errors.ThrottlingError('slow down'), 'THROTTLED'],
    [new errors.IotHubQuotaExceededError('quota'), 'QUOTA_EXCEEDED'],
    [new errors.MessageTooLargeError('big'), 'MESSAGE_TOO_LARGE'],
    [new errors.DeviceNotFoundError('who'), 'DEVICE_NOT_FOUND'],
    [new errors.DeviceMessageLockLostError('lock'), 'LOCK_LOST'],
    [new errors.NotImplementedError('nope'), 'FEATURE_UNSUPPORTED'],
    [new errors.TimeoutError('late'), 'TIMEOUT'],
    [new errors.NotConnectedError('gone'), 'NOT_CONNECTED'],
    [new errors.InvalidOperationError('no'), 'FORBIDDEN'],
    [Object.assign(new Error('Too Many Requests'), { response: { statusCode: 429 } }), 'THROTTLED'],
    [Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }), 'CONNECT_FAILED'],
    [new DOMException('aborted', 'AbortError'), 'ABORTED'],
    ['a string', 'INTERNAL'],
  ])('%s → %s', (err, code) => {
    expect(translateError(err).code).toBe(code);
  });

  it('tells an MQTT first-connect "Unauthorized" that is really ECONNREFUSED from a real refusal', () => {
    const refused = new errors.UnauthorizedError('Failure on first connection (Not authorized): connect ECONNREFUSED 127.0.0.1:8883');
    expect(translateError(refused, { protocol: 'mqtt', operation: 'connect' })).toMatchObject({ code: 'CONNECT_FAILED', details: { failure: 'network', protocol: 'mqtt' } });
    const real = new errors.UnauthorizedError('Failure on first connection (Not authorized): Connection refused: Not authorized');
    expect(translateError(real, { protocol: 'mqtt', operation: 'connect' })).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
    const tls = new errors.UnauthorizedError('Failure on first connection (Not authorized): self-signed certificate in certificate chain');
    expect(translateError(tls, { operation: 'connect' })).toMatchObject({ code: 'CONNECT_FAILED', retryable: false, details: { failure: 'tls' } });
  });

  it('redacts keys and signatures from messages', () => {
    const e = translateError(new Error('bad HostName=h;DeviceId=d;SharedAccessKey=SECRETKEY and SharedAccessSignature sr=x&sig=SIGNATURE&se=1'));
    expect(e.message).not.toMatch(/SECRETKEY|SIGNATURE/);
  });

  it('passes SwitchyardErrors through unchanged', () => {
    const e = translateError(new errors.ThrottlingError('x'));
    expect(translateError(e)).toBe(e);
  });
});

describe('transport dispatch table', () => {
  it('maps each protocol to its own package and export (https is the HTTP package)', () => {
    expect(TRANSPORTS).toEqual({
      mqtt: { packageName: 'azure-iot-device-mqtt', exportName: 'Mqtt', version: '1.16.4' },
      'mqtt-ws': { packageName: 'azure-iot-device-mqtt', exportName: 'MqttWs', version: '1.16.4' },
      amqp: { packageName: 'azure-iot-device-amqp', exportName: 'Amqp', version: '1.14.4' },
      'amqp-ws': { packageName: 'azure-iot-device-amqp', exportName: 'AmqpWs', version: '1.14.4' },
      https: { packageName: 'azure-iot-device-http', exportName: 'Http', version: '1.14.4' },
    });
  });

  it.each(Object.entries(TRANSPORTS))('loads %s as the real class from only its package', async (protocol, spec) => {
    const asked: string[] = [];
    const ctor = await loadTransport(protocol as keyof typeof TRANSPORTS, (s) => {
      asked.push(s);
      return import(s);
    });
    expect(asked).toEqual([spec.packageName]);
    expect(ctor.name).toBe(spec.exportName);
  });

  it('reports a package that is not installed with the install command', async () => {
    const missing = async (s: string): Promise<unknown> => {
      throw Object.assign(new Error(`Cannot find package '${s}' imported from /app/x.js`), { code: 'ERR_MODULE_NOT_FOUND' });
    };
    await expect(loadTransport('amqp-ws', missing)).rejects.toMatchObject({
      code: 'TRANSPORT_MISSING',
      message: expect.stringContaining('npm install azure-iot-device-amqp@1.14.4'),
      details: { package: 'azure-iot-device-amqp', protocol: 'amqp-ws' },
    });
  });
});

describe('messages', () => {
  it('never puts a Date into an AMQP expiry, and writes ISO text for HTTPS', () => {
    const expiresAt = new Date('2030-01-01T00:00:00Z');
    expect(toAzureMessage({ body: 'x', expiresAt }, 'amqp').expiryTimeUtc).toBe(expiresAt.getTime());
    expect(toAzureMessage({ body: 'x', expiresAt }, 'amqp-ws').expiryTimeUtc).toBe(expiresAt.getTime());
    expect(toAzureMessage({ body: 'x', expiresAt }, 'https').expiryTimeUtc).toBe('2030-01-01T00:00:00.000Z');
  });

  it('refuses, over HTTPS only, property names and values that cannot be HTTP headers (the SDK would crash the process)', () => {
    expect(() => toAzureMessage({ body: 'x', properties: { 'spaced key': 'v' } }, 'https')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', details: { field: 'properties.spaced key' } }));
    expect(() => toAzureMessage({ body: 'x', properties: { k: 'line\nbreak' } }, 'https')).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', details: { field: 'properties.k' } }));
    expect(toAzureMessage({ body: 'x', properties: { 'unit-of_measure.v2': 'kWh / h' } }, 'https').properties.getValue('unit-of_measure.v2')).toBe('kWh / h');
    expect(toAzureMessage({ body: 'x', properties: { 'spaced key': 'line\nbreak' } }, 'mqtt').properties.getValue('spaced key')).toBe('line\nbreak');
  });

  it("is still the SDK's Message, with a JSON form that names it instead of listing every body byte (the MQTT transport stringifies each message for a debug line)", () => {
    const body = Buffer.alloc(1000, 'x');
    for (const m of [toAzureMessage(body, 'mqtt'), toAzureMessage({ body, messageId: 'm-1' }, 'mqtt')]) {
      expect(m).toBeInstanceOf(azureCommon.Message);
      expect(m.getData()).toBe(body);
      expect(JSON.stringify(m).length).toBeLessThan(60);
    }
    expect(JSON.parse(JSON.stringify(toAzureMessage({ body, messageId: 'm-1' }, 'mqtt')))).toEqual({ messageId: 'm-1', bytes: 1000 });
  });

  it('sends objects as JSON with content type and encoding', () => {
    const m = toAzureMessage({ body: { a: 1 } }, 'mqtt');
    expect(m.getData().toString()).toBe('{"a":1}');
    expect(m.contentType).toBe('application/json');
  });

  it('normalizes HTTP C2D: string body to Buffer, iothub-app- prefix removed, expiry to Date', () => {
    const m = fromAzureMessage(
      { data: 'hello', properties: { propertyList: [{ key: 'iothub-app-color', value: 'red' }] }, messageId: 'm', expiryTimeUtc: '2030-01-01T00:00:00.000Z' },
      'https',
    );
    expect(m.body).toEqual(Buffer.from('hello'));
    expect(m.properties).toEqual({ color: 'red' });
    expect(m.expiresAt?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });

  it('normalizes an AMQP expiry given as a number', () => {
    expect(fromAzureMessage({ data: Buffer.from('x'), expiryTimeUtc: 1893456000000 }, 'amqp').expiresAt?.toISOString()).toBe('2030-01-01T00:00:00.000Z');
  });
});

describe('endpoint routes', () => {
  it('uses GatewayHostName for mqtt/amqp and a redirecting agent for the 443 transports', () => {
    const ep = { host: '127.0.0.1', ports: { mqtt: 1883, amqp: 5672, https: 8443 } };
    expect(routeFor('mqtt', 'hub.azure-devices.net', undefined, ep)).toEqual({ gatewayHostName: '127.0.0.1:1883' });
    expect(routeFor('amqp', 'hub.azure-devices.net', undefined, ep)).toEqual({ gatewayHostName: '127.0.0.1:5672' });
    for (const p of ['mqtt-ws', 'amqp-ws', 'https'] as const) {
      expect(routeFor(p, 'hub.azure-devices.net', undefined, ep)).toEqual({ gatewayHostName: null, agentTarget: { host: '127.0.0.1', port: 8443 } });
    }
  });

  it('keeps a port-free GatewayHostName away from the WebSocket URL when it carries a port', () => {
    expect(routeFor('mqtt-ws', 'hub', '10.0.0.1:8883', undefined)).toEqual({ gatewayHostName: null, agentTarget: { host: '10.0.0.1', port: 443 } });
    expect(routeFor('mqtt', 'hub', '10.0.0.1:8883', undefined)).toEqual({ gatewayHostName: '10.0.0.1:8883' });
    expect(routeFor('mqtt', 'hub', undefined, undefined)).toEqual({});
    expect(withGatewayHostName('HostName=h;GatewayHostName=x:1;DeviceId=d', null)).toBe('HostName=h;DeviceId=d');
  });
});

describe('a malformed connection string', () => {
  const KEY = 'c2VjcmV0LWtleS1uZXZlci10by1iZS1zaG93bg==';
  it.each([
    ['a colon for "="', `HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey:${KEY}`],
    ['a bare key', `HostName=h.azure-devices.net;DeviceId=d1;${KEY}`],
    ['a key with no name', `HostName=h.azure-devices.net;DeviceId=d1;=${KEY}`],
  ])('with %s is refused naming the segment by position, never echoing it', (_what, connectionString) => {
    let error: unknown;
    try {
      parseConnectionString(connectionString);
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({ code: 'CONFIG_INVALID', details: { field: 'connectionString' } });
    const shown = `${(error as Error).message} ${JSON.stringify(error)}`;
    expect(shown).not.toContain(KEY.slice(0, 12));
    expect((error as Error).message).toContain('segment 3');
  });
});
