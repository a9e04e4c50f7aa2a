// The MQTT front-end of the local hub: MQTT 3.1.1 over TLS and over WebSockets, as IoT Hub speaks it.
// hub.ts owns the listeners and hands every accepted stream to handleConnection().
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { systemClock, type Clock } from '@switchyard/time';
import type { FrontEnd, HubCore, HubLogger } from '../core/types.ts';
import type { FaultInjector } from '../faults/injector.ts';
import type { HubStore } from '../store/index.ts';
import { MqttConnection, type MqttConnectionSettings } from './connection.ts';
import { PersistentSubscriptions } from './subscriptions.ts';

export interface MqttFrontEndDeps {
  core: HubCore;
  logger: HubLogger;
  /** Where persistent sessions (clean=0) keep their subscriptions. */
  store: Pick<HubStore, 'getSubscriptions' | 'setSubscriptions'>;
  /** The hub's clock, for SAS expiry; the system clock by default. */
  clock?: Clock;
  /** Defaults: 30 s to send CONNECT, 8 unacknowledged C2D per connection, 256 KiB + 16 KiB packets. */
  limits?: Partial<Pick<MqttConnectionSettings, 'connectTimeoutMs' | 'maxInFlightC2D' | 'maxPacketBytes' | 'closeGraceMs'>>;
  /** Fault injection (src/faults/); none by default. */
  faults?: FaultInjector;
}

export interface MqttFrontEnd extends FrontEnd {
  handleConnection(stream: Duplex, info: { protocol: 'mqtt' | 'mqtt-ws'; tlsSocket?: TLSSocket }): void;
  /** Live connections, for diagnostics and tests. */
  readonly connectionCount: number;
}

// IoT Hub's telemetry limit is 256 KiB of payload; the headroom covers topic and property bag.
const DEFAULT_MAX_PACKET_BYTES = 256 * 1024 + 16 * 1024;

export function createMqttFrontEnd(deps: MqttFrontEndDeps): MqttFrontEnd {
  const settings: MqttConnectionSettings = {
    core: deps.core,
    logger: deps.logger,
    clock: deps.clock ?? systemClock,
    subscriptions: new PersistentSubscriptions(deps.store, deps.core),
    connectTimeoutMs: deps.limits?.connectTimeoutMs ?? 30_000,
    maxInFlightC2D: deps.limits?.maxInFlightC2D ?? 8,
    maxPacketBytes: deps.limits?.maxPacketBytes ?? DEFAULT_MAX_PACKET_BYTES,
    closeGraceMs: deps.limits?.closeGraceMs ?? 2_000,
    ...(deps.faults ? { faults: deps.faults } : {}),
  };
  const connections = new Set<MqttConnection>();
  let closing = false;

  return {
    handleConnection(stream, info) {
      if (closing) {
        stream.destroy();
        return;
      }
      try {
        // Acks are tiny; Nagle would hold each one back for ~40 ms.
        info.tlsSocket?.setNoDelay(true);
        const connection = new MqttConnection(stream, info.protocol, info.tlsSocket, settings);
        connections.add(connection);
        void connection.closed.then(() => connections.delete(connection));
      } catch (err) {
        deps.logger.warn('mqtt connection could not be set up', { error: err instanceof Error ? err.message : String(err) });
        stream.destroy();
      }
    },
    get connectionCount() {
      return connections.size;
    },
    async close() {
      closing = true;
      const all = [...connections];
      for (const connection of all) connection.close('hub closing');
      await Promise.all(all.map((c) => c.closed));
    },
  };
}
