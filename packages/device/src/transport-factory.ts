// Maps a protocol to the one Azure transport package that implements it, and loads only that
// package. Users install just the transports their profiles can choose, so a static import of
// all three would both bloat memory and fail at load time on a lean install.
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';

export interface TransportSpec {
  /** npm package that implements the protocol. */
  packageName: 'azure-iot-device-mqtt' | 'azure-iot-device-amqp' | 'azure-iot-device-http';
  /** Named export of the transport class in that package. */
  exportName: 'Mqtt' | 'MqttWs' | 'Amqp' | 'AmqpWs' | 'Http';
  /** The version this package is tested with (its peerDependency). */
  version: string;
}

/**
 * The dispatch table. Each row is checked by a test, because getting one wrong (the Azure
 * longhaul script loaded the MQTT package for 'http') silently runs the wrong protocol.
 */
export const TRANSPORTS = {
  mqtt: { packageName: 'azure-iot-device-mqtt', exportName: 'Mqtt', version: '1.16.4' },
  'mqtt-ws': { packageName: 'azure-iot-device-mqtt', exportName: 'MqttWs', version: '1.16.4' },
  amqp: { packageName: 'azure-iot-device-amqp', exportName: 'Amqp', version: '1.14.4' },
  'amqp-ws': { packageName: 'azure-iot-device-amqp', exportName: 'AmqpWs', version: '1.14.4' },
  https: { packageName: 'azure-iot-device-http', exportName: 'Http', version: '1.14.4' },
} as const satisfies Record<Protocol, TransportSpec>;

/** A transport class: `new Ctor(authenticationProvider, baseClient?)`. */
export type TransportConstructor = new (authenticationProvider: unknown, base?: unknown) => object;

/** Resolves a bare specifier; injectable so tests can simulate a package that is not installed. */
export type ModuleImporter = (specifier: string) => Promise<unknown>;

const defaultImporter: ModuleImporter = (specifier) => import(specifier);

function isModuleNotFound(err: unknown, packageName: string): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  const message = String((err as { message?: unknown } | null)?.message ?? '');
  return (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') && message.includes(packageName);
}

/** Loads the transport class for `protocol`; TRANSPORT_MISSING names the package and the install command. */
export async function loadTransport(protocol: Protocol, importer: ModuleImporter = defaultImporter): Promise<TransportConstructor> {
  const spec: TransportSpec | undefined = (TRANSPORTS as Record<string, TransportSpec>)[protocol];
  if (spec === undefined) {
    throw new SwitchyardError('CONFIG_INVALID', `unknown protocol ${JSON.stringify(protocol)}; use one of ${Object.keys(TRANSPORTS).join(', ')}`, {
      details: { field: 'protocol', value: protocol },
    });
  }
  let mod: unknown;
  try {
    mod = await importer(spec.packageName);
  } catch (cause) {
    if (isModuleNotFound(cause, spec.packageName)) {
      throw new SwitchyardError('TRANSPORT_MISSING', `protocol ${protocol} needs the package ${spec.packageName}, which is not installed; run: npm install ${spec.packageName}@${spec.version}`, {
        cause,
        details: { protocol, package: spec.packageName, version: spec.version, install: `npm install ${spec.packageName}@${spec.version}` },
      });
    }
    throw new SwitchyardError('INTERNAL', `loading ${spec.packageName} for ${protocol} failed: ${String((cause as Error)?.message ?? cause)}`, { cause, details: { protocol, package: spec.packageName } });
  }
  // CommonJS packages arrive as named exports (cjs-module-lexer) or only under `default`.
  const named = (mod as Record<string, unknown> | undefined)?.[spec.exportName];
  const viaDefault = ((mod as { default?: Record<string, unknown> } | undefined)?.default)?.[spec.exportName];
  const ctor = named ?? viaDefault;
  if (typeof ctor !== 'function') {
    throw new SwitchyardError('TRANSPORT_MISSING', `${spec.packageName} does not export ${spec.exportName}; install the tested version: npm install ${spec.packageName}@${spec.version}`, {
      details: { protocol, package: spec.packageName, version: spec.version, install: `npm install ${spec.packageName}@${spec.version}` },
    });
  }
  return ctor as TransportConstructor;
}

/**
 * rhea prints `[connection-N] disconnected CloseEvent {…}` on stderr when a connection drops and
 * nobody listens for 'disconnected'; azure-iot-amqp-base listens only once a connection opened, so
 * every failed AMQP-WS connect dumped a raw WebSocket event into the application's output. The
 * drop still reaches the SDK (and us) through its own handlers; the container-level listener only
 * tells rhea that someone heard it. A transport without the private fields is left as it is.
 */
export function quietRheaDisconnects(transport: unknown): void {
  const container = (transport as { _amqp?: { _rheaContainer?: { on?: unknown; listenerCount?: unknown } } } | undefined)?._amqp?._rheaContainer;
  if (typeof container?.on !== 'function' || typeof container.listenerCount !== 'function') return;
  const emitter = container as { on(event: string, fn: () => void): void; listenerCount(event: string): number };
  if (emitter.listenerCount('disconnected') === 0) emitter.on('disconnected', () => undefined);
}
