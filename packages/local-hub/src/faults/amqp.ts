// IoT Hub's AMQP kill faults on one connection of the AMQP front-end. Link names follow the
// direction of the traffic they carry: a "request" link carries requests (twin: device → hub;
// methods: hub → device), a "response" link the answers.
import type { Socket } from 'node:net';
import type { Connection, Receiver, Sender, Session } from 'rhea';
import type { DeviceProtocol } from '../core/types.ts';
import { resetSocket, type FaultTarget } from './targets.ts';
import type { KillFault } from './vocabulary.ts';

export type AmqpEndpoint = 'cbs' | 'events' | 'c2d' | 'methods' | 'twin';

/** What the AMQP front-end lends the fault target; it owns the connection throughout. */
export interface AmqpFaultHost {
  readonly connectionId: string;
  readonly protocol: Extract<DeviceProtocol, 'amqp' | 'amqp-ws'>;
  readonly socket: Socket | undefined;
  deviceIds(): readonly string[];
  /** The device's links and the connection's `$cbs` links, as the hub holds them. */
  links(deviceId: string): Array<{ endpoint: AmqpEndpoint; link: Sender | Receiver }>;
  /** The rhea connection, once its open frame has arrived. */
  connection(): Connection | undefined;
  destroyTransport(): void;
}

/** Which of the hub's links a link fault detaches: `ours` is the hub side of the link. */
const LINK_FAULTS: Partial<Record<KillFault, { endpoint: AmqpEndpoint; ours: 'sender' | 'receiver' }>> = {
  KillAmqpCBSLinkReq: { endpoint: 'cbs', ours: 'receiver' },
  KillAmqpCBSLinkResp: { endpoint: 'cbs', ours: 'sender' },
  KillAmqpD2CLink: { endpoint: 'events', ours: 'receiver' },
  KillAmqpC2DLink: { endpoint: 'c2d', ours: 'sender' },
  KillAmqpTwinLinkReq: { endpoint: 'twin', ours: 'receiver' },
  KillAmqpTwinLinkResp: { endpoint: 'twin', ours: 'sender' },
  KillAmqpMethodReqLink: { endpoint: 'methods', ours: 'sender' },
  KillAmqpMethodRespLink: { endpoint: 'methods', ours: 'receiver' },
};

// azure-iot-amqp-base reads detach-forced as ServiceUnavailableError, which it retries.
const DETACH_FORCED = 'amqp:link:detach-forced';
const CONNECTION_FORCED = 'amqp:connection:forced';
/** After a close frame, how long the peer gets to answer before the socket goes. */
const CLOSE_GRACE_MS = 500;

export function amqpFaultTarget(host: AmqpFaultHost): FaultTarget {
  const closeConnection = (error: { condition: string; description: string } | undefined): string | undefined => {
    const connection = host.connection();
    if (connection === undefined || !connection.is_open()) {
      host.destroyTransport();
      return 'transport closed (the AMQP connection was not open)';
    }
    // The sessions end first, then the connection: azure-iot-amqp-base, told of a close while its
    // sessions look alive, waits 45 s for detach replies that a closed connection never sends;
    // told of the session end first, it force-detaches and follows the close at once.
    for (const session of sessionsOf(connection)) session.close(error);
    connection.close(error);
    // IoT Hub ends the TCP connection after the close; a peer that never answers must not keep it.
    const timer = setTimeout(() => host.destroyTransport(), CLOSE_GRACE_MS);
    timer.unref();
    return error ? `connection closed with ${error.condition}` : 'connection closed cleanly';
  };

  return {
    connectionId: host.connectionId,
    protocol: host.protocol,
    get socket() {
      return host.socket;
    },
    deviceIds: () => host.deviceIds(),
    kill(type, deviceId, reason) {
      switch (type) {
        case 'KillTcp':
          if (host.socket) resetSocket(host.socket);
          else host.destroyTransport();
          return 'transport destroyed';
        case 'KillAmqpConnection':
          return closeConnection({ condition: CONNECTION_FORCED, description: reason });
        case 'ShutDownAmqp':
          return closeConnection(undefined);
        case 'KillAmqpSession': {
          const sessions = new Set<Session>();
          for (const { endpoint, link } of host.links(deviceId)) if (endpoint !== 'cbs' && link.session) sessions.add(link.session);
          for (const session of sessions) session.close({ condition: DETACH_FORCED, description: reason });
          return sessions.size > 0 ? `${sessions.size} session(s) ended` : undefined;
        }
        case 'ShutDownMqtt':
          return undefined;
        default: {
          const which = LINK_FAULTS[type];
          if (which === undefined) return undefined;
          const links = host.links(deviceId).filter(({ endpoint, link }) => endpoint === which.endpoint && (which.ours === 'sender' ? link.is_sender() : link.is_receiver()) && link.is_open());
          for (const { link } of links) link.close({ condition: DETACH_FORCED, description: reason });
          return links.length > 0 ? `${links.length} ${which.endpoint} ${which.ours === 'sender' ? 'hub→device' : 'device→hub'} link(s) detached` : undefined;
        }
      }
    },
  };
}

/** rhea keeps a connection's sessions in `local_channel_map`; its typings do not list them. */
function sessionsOf(connection: Connection): Session[] {
  const map = (connection as unknown as { local_channel_map?: Record<string, Session> }).local_channel_map ?? {};
  return Object.values(map).filter((s) => s && typeof s.close === 'function' && s.is_open());
}
