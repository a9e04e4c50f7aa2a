// Helpers for the fault-injection tests: the unmodified Azure device SDK over each transport with
// the transport instance in reach (a subclass that records itself, so its documented 'error' and
// 'disconnect' events can be awaited), fault-carrying messages, and waits on the hub's fault events.
import type { EventEmitter } from 'node:events';
import azureDevice, { type Client } from 'azure-iot-device';
import azureMqtt from 'azure-iot-device-mqtt';
import azureAmqp from 'azure-iot-device-amqp';
import azureHttp from 'azure-iot-device-http';
import azureCommon from 'azure-iot-common';
import type { FaultEvent, LocalHub } from '../../src/index.ts';
import { RedirectAgent, connectionString, type TransportName } from './azure-clients.ts';

const { Message } = azureDevice;
const ctors = { mqtt: azureMqtt.Mqtt, 'mqtt-ws': azureMqtt.MqttWs, amqp: azureAmqp.Amqp, 'amqp-ws': azureAmqp.AmqpWs, https: azureHttp.Http } as const;

export interface FaultClient {
  client: Client;
  /** The SDK's transport object, as the Client holds it. */
  transport: EventEmitter;
  deviceId: string;
  close(): Promise<void>;
}

export function keyOf(hub: LocalHub, deviceId: string): string {
  const device = hub.getDevice(deviceId) ?? hub.createDevice(deviceId);
  if (device.authentication.type !== 'sas') throw new Error('expected a SAS device');
  return device.authentication.primaryKey;
}

export async function faultClient(hub: LocalHub, transport: TransportName, deviceId: string, opts: { noRetry?: boolean } = {}): Promise<FaultClient> {
  const recorded: EventEmitter[] = [];
  const Base = ctors[transport] as unknown as new (...args: unknown[]) => EventEmitter;
  class Recorded extends Base {
    constructor(...args: unknown[]) {
      super(...args);
      recorded.push(this);
    }
  }
  const client = azureDevice.Client.fromConnectionString(connectionString(hub, transport, deviceId, keyOf(hub, deviceId)), Recorded as unknown as Parameters<typeof azureDevice.Client.fromConnectionString>[1]);
  const agent = new RedirectAgent({ host: hub.address, port: hub.ports.https });
  const options: Record<string, unknown> = { ca: hub.ca };
  if (transport === 'mqtt-ws') options.mqtt = { webSocketAgent: agent };
  if (transport === 'amqp-ws') options.amqp = { webSocketAgent: agent };
  if (transport === 'https') options.http = { agent, receivePolicy: { interval: 0.2, drain: true } };
  await client.setOptions(options as Parameters<Client['setOptions']>[0]);
  if (opts.noRetry) client.setRetryPolicy(new azureCommon.NoRetry());
  // An 'error' without a listener would crash the test process.
  client.on('error', () => undefined);
  const transportObject = recorded[0];
  if (!transportObject) throw new Error('the SDK did not construct its transport');
  transportObject.on('error', () => undefined);
  return {
    client,
    transport: transportObject,
    deviceId,
    close: async () => {
      await within(client.close().then(() => undefined), 5000, 'client close').catch(() => undefined);
      agent.destroy();
    },
  };
}

/** A telemetry message carrying IoT Hub's fault-injection properties. */
export function faultMessage(type: string, opts: { delay?: number; duration?: number; reason?: string } = {}): InstanceType<typeof Message> {
  const m = new Message('');
  m.properties.add('AzIoTHub_FaultOperationType', type);
  m.properties.add('AzIoTHub_FaultOperationCloseReason', opts.reason ?? 'boom');
  m.properties.add('AzIoTHub_FaultOperationDelayInSecs', String(opts.delay ?? 0));
  if (opts.duration !== undefined) m.properties.add('AzIoTHub_FaultOperationDurationInSecs', String(opts.duration));
  return m;
}

/** Resolves with the next fault event for the device that matches. */
export function nextFault(hub: LocalHub, deviceId: string, fault: string, phase: FaultEvent['phase'] = 'started', ms = 10_000): Promise<FaultEvent> {
  return within(new Promise<FaultEvent>((resolve) => {
    const listener = (event: FaultEvent): void => {
      if (event.deviceId !== deviceId || event.fault !== fault || event.phase !== phase) return;
      hub.faults.off('fault', listener);
      resolve(event);
    };
    hub.faults.on('fault', listener);
  }), ms, `${fault} ${phase} for ${deviceId}`);
}

/** Resolves with the first emission of `event` on `emitter`. */
export function once<T = unknown>(emitter: EventEmitter | Client, event: string, ms = 10_000): Promise<T> {
  return within(new Promise<T>((resolve) => (emitter as EventEmitter).once(event, (value: T) => resolve(value))), ms, `'${event}'`);
}

/** Resolves with the next hub 'connected' event of the device. */
export function nextConnect(hub: LocalHub, deviceId: string, ms = 10_000): Promise<string> {
  return within(new Promise<string>((resolve) => {
    const listener = (s: { deviceId: string; connectionId: string }): void => {
      if (s.deviceId !== deviceId) return;
      hub.off('connected', listener);
      resolve(s.connectionId);
    };
    hub.on('connected', listener);
  }), ms, `connect of ${deviceId}`);
}

export function sendEvent(client: Client, message: InstanceType<typeof Message>): Promise<Error | undefined> {
  return new Promise((resolve) => {
    client.sendEvent(message, (err?: Error) => resolve(err ?? undefined));
  });
}

export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

export { Message };
