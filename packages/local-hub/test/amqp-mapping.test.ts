// Pure parts of the AMQP front-end: addresses and authorization, CBS request parsing, and the
// message mapping. Messages go through rhea's real encoder and decoder, as on the wire.
import { describe, expect, it } from 'vitest';
import rhea from 'rhea';
import { checkTelemetryTo, decideAttach, parseAddress } from '../src/amqp/address.ts';
import { parsePutToken, putTokenReply } from '../src/amqp/cbs.ts';
import {
  c2dToAmqp,
  decodeBatch,
  desiredPatchMessage,
  messageIdToString,
  methodRequestMessage,
  parseMethodResponse,
  parseTwinRequest,
  telemetryFromAmqp,
  twinReply,
  type AmqpMessageLike,
} from '../src/amqp/mapping.ts';
import type { LockedC2DMessage } from '../src/core/types.ts';

/** Encodes with rhea and decodes again, so tests see what the front-end sees. */
function wire(message: Record<string, unknown>): AmqpMessageLike {
  return rhea.message.decode(rhea.message.encode(message)) as AmqpMessageLike;
}

describe('addresses', () => {
  it('parses the device endpoints the SDK uses', () => {
    expect(parseAddress('$cbs')).toEqual({ kind: 'cbs' });
    expect(parseAddress('/devices/d1/messages/events')).toEqual({ kind: 'device', deviceId: 'd1', endpoint: 'events' });
    expect(parseAddress('/devices/d1/messages/devicebound')).toEqual({ kind: 'device', deviceId: 'd1', endpoint: 'c2d' });
    expect(parseAddress('/devices/d1/methods/devicebound')).toEqual({ kind: 'device', deviceId: 'd1', endpoint: 'methods' });
    expect(parseAddress('/devices/d1/twin')).toEqual({ kind: 'device', deviceId: 'd1', endpoint: 'twin' });
    // Module links are their own identity (see modules-wire.test.ts); a bare devicebound under a module is not an address.
    expect(parseAddress('/devices/d1/modules/m/messages/devicebound').kind).toBe('unknown');
    expect(parseAddress('/messages/devicebound').kind).toBe('unknown');
    expect(parseAddress(undefined).kind).toBe('unknown');
  });

  it('authorizes an attach only for a held identity in the direction the endpoint allows', () => {
    const held = (id: string): boolean => id === 'mine';
    expect(decideAttach('/devices/mine/messages/events', true, held)).toMatchObject({ ok: true, deviceId: 'mine', endpoint: 'events' });
    expect(decideAttach('/devices/mine/messages/events', false, held)).toMatchObject({ ok: false });
    expect(decideAttach('/devices/mine/messages/devicebound', true, held)).toMatchObject({ ok: false });
    expect(decideAttach('/devices/mine/twin', false, held)).toMatchObject({ ok: true, endpoint: 'twin' });
    expect(decideAttach('/devices/theirs/twin', false, held)).toMatchObject({ ok: false, deviceId: 'theirs' });
    expect(decideAttach('$cbs', true, held)).toEqual({ ok: true, kind: 'cbs' });
    expect(decideAttach('/$iothub/whatever', true, held)).toMatchObject({ ok: false });
  });

  it('accepts a telemetry `to` only for the link’s own device', () => {
    expect(checkTelemetryTo(undefined, 'd1')).toEqual({ ok: true });
    expect(checkTelemetryTo('/devices/d1/messages/events', 'd1')).toEqual({ ok: true });
    expect(checkTelemetryTo('/devices/d2/messages/events', 'd1').ok).toBe(false);
    expect(checkTelemetryTo('/devices/d1/twin', 'd1').ok).toBe(false);
  });
});

describe('CBS put-token', () => {
  const token = 'SharedAccessSignature sr=hub.azure-devices.net%2Fdevices%2Fd1&sig=abc&se=1';
  const request = (overrides: Record<string, unknown> = {}, body: unknown = token): AmqpMessageLike => wire({
    message_id: 'req-1',
    to: '$cbs',
    reply_to: 'cbs',
    application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: 'hub.azure-devices.net%2Fdevices%2Fd1', ...overrides },
    body,
  });

  it('takes the device from the url-encoded audience and the token from the body', () => {
    expect(parsePutToken(request())).toEqual({ ok: true, messageId: 'req-1', deviceId: 'd1', audience: 'hub.azure-devices.net/devices/d1', token });
    // A port in HostName ends up in the audience; the device id is still the last segment.
    expect(parsePutToken(request({ name: encodeURIComponent('127.0.0.1:5671/devices/d:2') }))).toMatchObject({ ok: true, deviceId: 'd:2' });
    expect(parsePutToken(request({}, rhea.message.data_section(Buffer.from(token))))).toMatchObject({ ok: true, token });
  });

  it('refuses other operations, token types, audiences and bodies with 400', () => {
    expect(parsePutToken(request({ operation: 'delete-token' }))).toMatchObject({ ok: false, status: 400, messageId: 'req-1' });
    expect(parsePutToken(request({ type: 'jwt' }))).toMatchObject({ ok: false, status: 400 });
    expect(parsePutToken(request({ name: 'hub.azure-devices.net' }))).toMatchObject({ ok: false, status: 400 });
    expect(parsePutToken(request({ name: '%E0%A4%A' }))).toMatchObject({ ok: false, status: 400 });
    expect(parsePutToken(request({ name: encodeURIComponent('hub/devices/d1/modules/m1/extra') }))).toMatchObject({ ok: false, status: 400 });
    expect(parsePutToken(request({}, 'Bearer xyz'))).toMatchObject({ ok: false, status: 400 });
  });

  it('replies with a numeric status-code correlated to the request', () => {
    const reply = wire(putTokenReply('req-1', 200, 'OK'));
    expect(reply.correlation_id).toBe('req-1');
    expect(reply.application_properties).toEqual({ 'status-code': 200, 'status-description': 'OK' });
  });
});

describe('telemetry mapping', () => {
  it('maps properties, annotations and ids the way the SDK sends them', () => {
    const uuid = '3f1b2c4d-1111-4222-8333-944455556666';
    const input = telemetryFromAmqp(wire({
      message_id: 'm-1',
      correlation_id: rhea.string_to_uuid(uuid),
      user_id: Buffer.from('user-7'),
      content_type: 'application/json',
      content_encoding: 'utf-8',
      absolute_expiry_time: 1_800_000_000_000,
      message_annotations: { 'dt-subject': 'thermo', 'iothub-interface-id': 'urn:x' },
      application_properties: { color: 'red', n: 3, flag: true },
      body: rhea.message.data_section(Buffer.from([0, 1, 2, 255])),
    }));
    expect(input.body).toEqual(Buffer.from([0, 1, 2, 255]));
    expect(input.properties).toEqual({ color: 'red', n: '3', flag: 'true' });
    expect(input.systemProperties).toEqual({
      messageId: 'm-1',
      correlationId: uuid,
      userId: 'user-7',
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      expiryTimeUtc: new Date(1_800_000_000_000).toISOString(),
      subject: 'thermo',
      interfaceId: 'urn:x',
    });
  });

  it('reads several data sections, a string value and a binary value as the body', () => {
    expect(telemetryFromAmqp(wire({ body: rhea.message.data_sections([Buffer.from('ab'), Buffer.from('cd')]) })).body.toString()).toBe('abcd');
    expect(telemetryFromAmqp(wire({ body: 'text' })).body.toString()).toBe('text');
    expect(telemetryFromAmqp(wire({ body: Buffer.from('bin') })).body.toString()).toBe('bin');
    expect(telemetryFromAmqp(wire({})).body).toHaveLength(0);
  });

  it('renders message ids of every AMQP type as strings', () => {
    expect(messageIdToString('s')).toBe('s');
    expect(messageIdToString(42)).toBe('42');
    expect(messageIdToString(Buffer.from('abc'))).toBe('abc');
    expect(messageIdToString(undefined)).toBeUndefined();
  });

  it('splits a batch into its encoded messages and refuses anything else', () => {
    const batch = rhea.message.encode({
      body: rhea.message.data_sections([
        rhea.message.encode({ message_id: 'a', body: rhea.message.data_section(Buffer.from('1')) }),
        rhea.message.encode({ message_id: 'b', body: rhea.message.data_section(Buffer.from('2')) }),
      ]),
    });
    expect(decodeBatch(batch).map((m) => telemetryFromAmqp(m).systemProperties.messageId)).toEqual(['a', 'b']);
    expect(() => decodeBatch(rhea.message.encode({ body: 'not sections' }))).toThrow(/data sections/);
  });
});

describe('C2D, twin and method messages', () => {
  const c2d: LockedC2DMessage = {
    deviceId: 'd1', messageId: 'c-1', correlationId: 'corr', body: Buffer.from('hi'), properties: { k: 'v' }, ack: 'full',
    to: '/devices/d1/messages/devicebound', enqueuedAt: 1, expiresAt: 1_800_000_000_000, deliveryCount: 2, lockToken: 'lock', lockedUntil: 2,
  };

  it('sends C2D with a data-section body and what AmqpMessage.toMessage reads', () => {
    const m = wire(c2dToAmqp(c2d)) as AmqpMessageLike & { delivery_count?: number };
    expect(m.body).toMatchObject({ typecode: 0x75, content: Buffer.from('hi') });
    expect(m.message_id).toBe('c-1');
    expect(m.correlation_id).toBe('corr');
    expect(m.to).toBe('/devices/d1/messages/devicebound');
    expect((m.absolute_expiry_time as Date).getTime()).toBe(1_800_000_000_000);
    expect(m.application_properties).toEqual({ k: 'v', 'iothub-ack': 'full' });
    expect(m.delivery_count).toBe(2);
    expect(JSON.stringify(c2dToAmqp(c2d))).not.toContain('lock');
  });

  it('parses twin requests and refuses unknown operations and resources', () => {
    const req = (annotations: Record<string, unknown>, body = ' ', correlation_id: unknown = 'r-1'): AmqpMessageLike => wire({ correlation_id, message_annotations: annotations, body: rhea.message.data_section(Buffer.from(body)) });
    expect(parseTwinRequest(req({ operation: 'GET' }))).toEqual({ ok: true, request: { operation: 'GET', correlationId: 'r-1' } });
    expect(parseTwinRequest(req({ operation: 'PATCH', resource: '/properties/reported' }, '{"a":1}'))).toEqual({ ok: true, request: { operation: 'PATCH', correlationId: 'r-1', patch: { a: 1 } } });
    expect(parseTwinRequest(req({ operation: 'PUT', resource: '/notifications/twin/properties/desired' }))).toMatchObject({ ok: true, request: { operation: 'PUT' } });
    expect(parseTwinRequest(req({ operation: 'DELETE', resource: '/notifications/twin/properties/desired' }))).toMatchObject({ ok: true, request: { operation: 'DELETE' } });
    expect(parseTwinRequest(req({ operation: 'PATCH', resource: '/properties/desired' }, '{}'))).toMatchObject({ ok: false, status: 400, correlationId: 'r-1' });
    expect(parseTwinRequest(req({ operation: 'PATCH', resource: '/properties/reported' }, 'not json'))).toMatchObject({ ok: false, status: 400 });
    expect(parseTwinRequest(req({ operation: 'PATCH', resource: '/properties/reported' }, '[1]'))).toMatchObject({ ok: false, status: 400 });
    expect(parseTwinRequest(req({ operation: 'POST' }))).toMatchObject({ ok: false, status: 400 });
    expect(parseTwinRequest(wire({ message_annotations: { operation: 'GET' } }))).toMatchObject({ ok: false });
  });

  it('answers twin requests with a numeric status, a version and a data-section body', () => {
    const reply = wire(twinReply('r-1', 204, undefined, 7));
    expect(reply.correlation_id).toBe('r-1');
    expect(reply.message_annotations).toEqual({ status: 204, version: 7 });
    expect(reply.body).toMatchObject({ typecode: 0x75 });
    const patch = wire(desiredPatchMessage({ interval: 5, $version: 3 }));
    expect(patch.correlation_id).toBeUndefined();
    expect(JSON.parse(Buffer.from((patch.body as { content: Buffer }).content).toString())).toEqual({ interval: 5, $version: 3 });
  });

  it('builds method requests and parses responses, including uuid-typed correlation ids', () => {
    const request = wire(methodRequestMessage({ requestId: 'q-1', methodName: 'reboot', payload: { a: 1 } }));
    expect(request.correlation_id).toBe('q-1');
    expect(request.application_properties).toEqual({ 'IoThub-methodname': 'reboot' });
    const uuid = 'a1b2c3d4-0000-4000-8000-000000000001';
    const response = wire({ correlation_id: rhea.string_to_uuid(uuid), application_properties: { 'IoThub-status': 200 }, body: rhea.message.data_section(Buffer.from('{"ok":true}')) });
    expect(parseMethodResponse(response)).toEqual({ ok: true, requestId: uuid, status: 200, payload: { ok: true } });
    expect(parseMethodResponse(wire({ correlation_id: 'x', application_properties: { 'IoThub-status': '200' } }))).toMatchObject({ ok: false });
    expect(parseMethodResponse(wire({ application_properties: { 'IoThub-status': 200 } }))).toMatchObject({ ok: false });
  });
});
