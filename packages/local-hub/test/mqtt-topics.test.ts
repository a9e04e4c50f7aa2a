import { describe, expect, it } from 'vitest';
import {
  c2dTopic,
  classifyPublishTopic,
  classifySubscription,
  desiredPatchTopic,
  formatPropertyBag,
  methodRequestTopic,
  parsePropertyBag,
  telemetryProperties,
  twinResponseTopic,
} from '../src/mqtt/topics.ts';
import { certificateThumbprints, checkClientId, keepAliveTimeoutMs, parseUsername } from '../src/mqtt/connect.ts';

describe('MQTT property bags', () => {
  it('decodes the bag the Azure SDK writes for telemetry', () => {
    // Captured from azure-iot-device-mqtt 1.16.4 (azure-sdk-transports.md §3.2).
    const bag = '%24.mid=mid-1&%24.cid=cid-1&%24.ct=application%2Fjson&%24.ce=utf-8&%24.exp=2030-01-01T00%3A00%3A00.000Z&k%201=v%2F1%26x&%24.sub=subj&%24.uid=u&%24.ifid=urn%3Ax&%24.to=%2Fdevices%2Fd1';
    const entries = parsePropertyBag(bag);
    expect(entries).toBeDefined();
    const { properties, systemProperties } = telemetryProperties(entries ?? []);
    expect(systemProperties).toEqual({
      messageId: 'mid-1', correlationId: 'cid-1', contentType: 'application/json', contentEncoding: 'utf-8',
      expiryTimeUtc: '2030-01-01T00:00:00.000Z', subject: 'subj', userId: 'u', interfaceId: 'urn:x',
    });
    expect(properties).toEqual({ 'k 1': 'v/1&x' });
  });

  it('keeps a literal $ and a key without a value', () => {
    expect(parsePropertyBag('$.mid=a&flag&x=')).toEqual([['$.mid', 'a'], ['flag', ''], ['x', '']]);
    expect(parsePropertyBag('')).toEqual([]);
  });

  it('refuses malformed percent-encoding instead of throwing', () => {
    expect(parsePropertyBag('a=%E0%A4%A')).toBeUndefined();
    expect(parsePropertyBag('%zz=1')).toBeUndefined();
  });

  it('round-trips arbitrary keys and values', () => {
    const entries = [['$.mid', 'm 1'], ['ü&=', 'a+b/c?d#e%'], ['', '']] as const;
    expect(parsePropertyBag(formatPropertyBag(entries))).toEqual(entries.map((e) => [...e]));
  });
});

describe('MQTT topic classification', () => {
  it('accepts the device\'s own telemetry topic, with or without a bag', () => {
    expect(classifyPublishTopic('d1', 'devices/d1/messages/events/')).toEqual({ kind: 'telemetry', bag: '' });
    expect(classifyPublishTopic('d1', 'devices/d1/messages/events')).toEqual({ kind: 'telemetry', bag: '' });
    expect(classifyPublishTopic('d1', 'devices/d1/messages/events/a=1&b=2')).toEqual({ kind: 'telemetry', bag: 'a=1&b=2' });
    expect(classifyPublishTopic('d1', 'devices/d1/messages/events/%24.on=o1/')).toEqual({ kind: 'telemetry', bag: '%24.on=o1' });
  });

  it('refuses other devices\' topics and anything undocumented', () => {
    for (const topic of ['devices/d2/messages/events/', 'devices/d1x/messages/events/', 'devices/d1/messages/devicebound/', 'devices/d1/messages/eventsX', '#', '$iothub/methods/POST/m/?$rid=1', '$iothub/twin/GET/']) {
      expect(classifyPublishTopic('d1', topic).kind).toBe('forbidden');
    }
  });

  it('reads twin and method request ids', () => {
    expect(classifyPublishTopic('d1', '$iothub/twin/GET/?$rid=abc')).toEqual({ kind: 'twin-get', rid: 'abc' });
    expect(classifyPublishTopic('d1', '$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3')).toEqual({ kind: 'twin-patch-reported', rid: '7' });
    expect(classifyPublishTopic('d1', '$iothub/methods/res/200/?$rid=42')).toEqual({ kind: 'method-response', status: 200, rid: '42' });
    expect(classifyPublishTopic('d1', '$iothub/methods/res/abc/?$rid=42').kind).toBe('forbidden');
  });

  it('allows only the four documented filters, for the device itself', () => {
    expect(classifySubscription('d1', 'devices/d1/messages/devicebound/#')).toBe('c2d');
    expect(classifySubscription('d1', '$iothub/methods/POST/#')).toBe('methods');
    expect(classifySubscription('d1', '$iothub/twin/res/#')).toBe('twin-responses');
    expect(classifySubscription('d1', '$iothub/twin/PATCH/properties/desired/#')).toBe('twin-desired');
    for (const filter of ['devices/d2/messages/devicebound/#', '#', 'devices/+/messages/devicebound/#', '$iothub/#', 'devices/d1/messages/events/#']) {
      expect(classifySubscription('d1', filter)).toBeUndefined();
    }
  });
});

describe('MQTT server-to-device topics', () => {
  it('formats C2D with the mandatory slash after devicebound and an ISO expiry', () => {
    const topic = c2dTopic({
      deviceId: 'd1', messageId: 'm 1', correlationId: 'c1', body: Buffer.alloc(0), properties: { color: 'red/blue' },
      to: '/devices/d1/messages/devicebound', enqueuedAt: 0, expiresAt: Date.UTC(2030, 0, 1), deliveryCount: 0, lockToken: 'l', lockedUntil: 0,
    });
    expect(topic.startsWith('devices/d1/messages/devicebound/')).toBe(true);
    // The SDK's own dispatcher regex (azure-sdk-transports.md §3.2).
    expect(/^devices\/.*\/messages\/devicebound\/.*$/.test(topic)).toBe(true);
    const bag = new Map(parsePropertyBag(topic.slice('devices/d1/messages/devicebound/'.length)));
    expect(bag.get('$.mid')).toBe('m 1');
    expect(bag.get('$.cid')).toBe('c1');
    expect(bag.get('$.to')).toBe('/devices/d1/messages/devicebound');
    expect(bag.get('$.exp')).toBe('2030-01-01T00:00:00.000Z');
    expect(bag.get('color')).toBe('red/blue');
  });

  it('formats twin, desired and method topics as IoT Hub does', () => {
    expect(twinResponseTopic(200, 'r1')).toBe('$iothub/twin/res/200/?$rid=r1');
    expect(twinResponseTopic(204, 'r1', 5)).toBe('$iothub/twin/res/204/?$rid=r1&$version=5');
    expect(desiredPatchTopic(3)).toBe('$iothub/twin/PATCH/properties/desired/?$version=3');
    expect(methodRequestTopic('reboot', '9')).toBe('$iothub/methods/POST/reboot/?$rid=9');
  });
});

describe('MQTT CONNECT identity', () => {
  it('parses the SDK username, with and without a port in the host', () => {
    expect(parseUsername('hub.azure-devices.net/d1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4')).toEqual({
      host: 'hub.azure-devices.net', deviceId: 'd1', query: { 'api-version': '2021-04-12', DeviceClientType: 'azure-iot-device/1.18.4' },
    });
    expect(parseUsername('127.0.0.1:18883/d1/?api-version=2021-04-12')?.host).toBe('127.0.0.1:18883');
    expect(parseUsername('h/d1/m1/?api-version=x')).toMatchObject({ deviceId: 'd1', moduleId: 'm1' });
    expect(parseUsername('h/d1')).toEqual({ host: 'h', deviceId: 'd1', query: {} });
  });

  it('refuses usernames without a device segment', () => {
    for (const u of [undefined, '', 'justhost', '/d1/?x', 'h//?x', 'h/d1/m/extra/?x', 'h/d1/?a=%zz']) expect(parseUsername(u)).toBeUndefined();
  });

  it('accepts device and module client ids, and rejects malformed ones with CONNACK 2', () => {
    expect(checkClientId('d1')).toEqual({ ok: true, deviceId: 'd1' });
    expect(checkClientId('d1/m1')).toEqual({ ok: true, deviceId: 'd1', moduleId: 'm1' });
    expect(checkClientId('d1/m1/x')).toMatchObject({ ok: false, returnCode: 2 });
    expect(checkClientId('d1/')).toMatchObject({ ok: false, returnCode: 2 });
    expect(checkClientId('')).toMatchObject({ ok: false, returnCode: 2 });
    expect(checkClientId('a b')).toMatchObject({ ok: false, returnCode: 2 });
    expect(checkClientId('x'.repeat(129))).toMatchObject({ ok: false, returnCode: 2 });
  });

  it('computes both thumbprints of a DER blob', () => {
    const t = certificateThumbprints(Buffer.from('abc'));
    expect(t.sha1).toBe('A9993E364706816ABA3E25717850C26C9CD0D89D');
    expect(t.sha256).toBe('BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD');
  });

  it('times out silence at 1.5 × keep-alive, capped at 1767 s', () => {
    expect(keepAliveTimeoutMs(180)).toBe(270_000);
    expect(keepAliveTimeoutMs(2000)).toBe(1_767_000);
    expect(keepAliveTimeoutMs(0)).toBe(1_767_000);
  });
});
