// Module identities on the wire, without sockets: the identity id, MQTT client ids and topics,
// AMQP link addresses and CBS audiences as the Azure SDK's ModuleClient sends them.
import rhea from 'rhea';
import { describe, expect, it } from 'vitest';
import { checkTelemetryTo, decideAttach, parseAddress } from '../src/amqp/address.ts';
import { parsePutToken } from '../src/amqp/cbs.ts';
import type { AmqpMessageLike } from '../src/amqp/mapping.ts';
import { describeIdentity, identityId, identityPath, isModuleIdentity, moduleIdProblem, parseIdentityId } from '../src/core/identity.ts';
import { checkClientId, parseUsername } from '../src/mqtt/connect.ts';
import { checkSubscription, classifyPublishTopic, telemetryTopic } from '../src/mqtt/topics.ts';

describe('identity ids', () => {
  it('name a device by its id and a module as <deviceId>/<moduleId>, and split back', () => {
    expect(identityId('d1')).toBe('d1');
    expect(identityId('d1', 'm1')).toBe('d1/m1');
    expect(parseIdentityId('d1')).toEqual({ deviceId: 'd1' });
    expect(parseIdentityId('d1/m1')).toEqual({ deviceId: 'd1', moduleId: 'm1' });
    for (const bad of ['', '/m', 'd/', 'd/m/x']) expect(parseIdentityId(bad)).toBeUndefined();
    expect(isModuleIdentity('d1/m1')).toBe(true);
    expect(isModuleIdentity('d1')).toBe(false);
    expect(identityPath({ deviceId: 'd1', moduleId: 'm1' })).toBe('/devices/d1/modules/m1');
    expect(identityPath({ deviceId: 'd1' })).toBe('/devices/d1');
    expect(describeIdentity('d1/m1')).toBe("module 'm1' of device 'd1'");
  });

  it('accept module ids in IoT Hub\'s alphabet, refusing $-names (IoT Edge system modules) and slashes', () => {
    expect(moduleIdProblem('temp-sensor.v2')).toBeUndefined();
    expect(moduleIdProblem('$edgeAgent')).toMatch(/reserved/);
    for (const bad of ['', 'a/b', 'a b', 'x'.repeat(129), 7]) expect(moduleIdProblem(bad)).toMatch(/invalid/);
  });
});

describe('MQTT for a module', () => {
  it('takes <deviceId>/<moduleId> as the client id and <host>/<deviceId>/<moduleId>/?… as the username', () => {
    expect(checkClientId('d1/m1')).toEqual({ ok: true, deviceId: 'd1', moduleId: 'm1' });
    expect(checkClientId('d1/m 1')).toMatchObject({ ok: false, returnCode: 2 });
    const username = 'hub.azure-devices.net/d1/m1/?api-version=2021-04-12&DeviceClientType=azure-iot-device%2F1.18.4';
    expect(parseUsername(username)).toMatchObject({ host: 'hub.azure-devices.net', deviceId: 'd1', moduleId: 'm1' });
  });

  it('files telemetry on the module topic as the module\'s, and refuses the device topic (and the other way round)', () => {
    expect(telemetryTopic('d1/m1')).toBe('devices/d1/modules/m1/messages/events');
    expect(classifyPublishTopic('d1/m1', 'devices/d1/modules/m1/messages/events/%24.mid=x&k=v/')).toEqual({ kind: 'telemetry', bag: '%24.mid=x&k=v' });
    expect(classifyPublishTopic('d1/m1', 'devices/d1/modules/m1/messages/events/')).toEqual({ kind: 'telemetry', bag: '' });
    expect(classifyPublishTopic('d1/m1', 'devices/d1/messages/events/').kind).toBe('forbidden');
    expect(classifyPublishTopic('d1/m1', 'devices/d1/modules/m2/messages/events/').kind).toBe('forbidden');
    expect(classifyPublishTopic('d1', 'devices/d1/modules/m1/messages/events/').kind).toBe('forbidden');
    // Twin and method topics carry no identity: they belong to whoever holds the connection.
    expect(classifyPublishTopic('d1/m1', '$iothub/twin/GET/?$rid=1')).toEqual({ kind: 'twin-get', rid: '1' });
    expect(classifyPublishTopic('d1/m1', '$iothub/methods/res/200/?$rid=9')).toEqual({ kind: 'method-response', status: 200, rid: '9' });
  });

  it('grants a module its twin and method filters and refuses C2D and IoT Edge input filters with a reason', () => {
    expect(checkSubscription('d1/m1', '$iothub/methods/POST/#')).toEqual({ ok: true, kind: 'methods' });
    expect(checkSubscription('d1/m1', '$iothub/twin/res/#')).toEqual({ ok: true, kind: 'twin-responses' });
    expect(checkSubscription('d1/m1', '$iothub/twin/PATCH/properties/desired/#')).toEqual({ ok: true, kind: 'twin-desired' });
    const inputs = checkSubscription('d1/m1', 'devices/d1/modules/m1/inputs/#');
    expect(inputs).toMatchObject({ ok: false });
    expect(!inputs.ok && inputs.why).toMatch(/IoT Edge/);
    const c2d = checkSubscription('d1/m1', 'devices/d1/messages/devicebound/#');
    expect(!c2d.ok && c2d.why).toMatch(/no cloud-to-device queue for a module/);
    expect(checkSubscription('d1', 'devices/d1/messages/devicebound/#')).toEqual({ ok: true, kind: 'c2d' });
    expect(checkSubscription('d1', 'devices/d1/modules/m1/inputs/#')).toMatchObject({ ok: false });
  });
});

describe('AMQP for a module', () => {
  it('parses module link addresses into the module identity', () => {
    expect(parseAddress('/devices/d1/modules/m1/messages/events')).toEqual({ kind: 'device', deviceId: 'd1/m1', endpoint: 'events', module: true });
    expect(parseAddress('/devices/d1/modules/m1/methods/devicebound')).toEqual({ kind: 'device', deviceId: 'd1/m1', endpoint: 'methods', module: true });
    expect(parseAddress('/devices/d1/modules/m1/twin')).toEqual({ kind: 'device', deviceId: 'd1/m1', endpoint: 'twin', module: true });
    expect(parseAddress('/devices/d1/modules/m1/messages/devicebound').kind).toBe('unknown');
    expect(parseAddress('/devices/d1/modules/m1/x/twin').kind).toBe('unknown');
  });

  it('authorizes module links only for the module credential, and refuses the input link as not allowed', () => {
    const heldModule = (id: string): boolean => id === 'd1/m1';
    expect(decideAttach('/devices/d1/modules/m1/messages/events', true, heldModule)).toEqual({ ok: true, kind: 'device', deviceId: 'd1/m1', endpoint: 'events' });
    expect(decideAttach('/devices/d1/messages/events', true, heldModule)).toMatchObject({ ok: false, deviceId: 'd1' });
    expect(decideAttach('/devices/d1/modules/m2/twin', false, heldModule)).toMatchObject({ ok: false, deviceId: 'd1/m2' });
    const input = decideAttach('/devices/d1/modules/m1/messages/events', false, heldModule);
    expect(input).toMatchObject({ ok: false, notAllowed: true, deviceId: 'd1/m1' });
    expect(!input.ok && input.why).toMatch(/no cloud-to-device or input messages to a module/);
  });

  it('accepts a module telemetry `to` only on that module\'s link', () => {
    expect(checkTelemetryTo('/devices/d1/modules/m1/messages/events', 'd1/m1')).toEqual({ ok: true });
    expect(checkTelemetryTo('/devices/d1/messages/events', 'd1/m1').ok).toBe(false);
    expect(checkTelemetryTo('/devices/d1/modules/m1/messages/events', 'd1').ok).toBe(false);
  });

  it('files a put-token for <host>/devices/<d>/modules/<m> under the module identity', () => {
    const token = 'SharedAccessSignature sr=x&sig=y&se=1';
    const message = rhea.message.decode(rhea.message.encode({
      message_id: 'r1',
      application_properties: { operation: 'put-token', type: 'servicebus.windows.net:sastoken', name: encodeURIComponent('hub.azure-devices.net/devices/d1/modules/m1') },
      body: token,
    })) as AmqpMessageLike;
    expect(parsePutToken(message)).toEqual({ ok: true, messageId: 'r1', deviceId: 'd1/m1', audience: 'hub.azure-devices.net/devices/d1/modules/m1', token });
  });
});
