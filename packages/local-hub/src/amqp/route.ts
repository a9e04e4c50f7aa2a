// A hook for AMQP endpoints that share the hub's AMQP listener but are not device endpoints (the
// Event Hubs-compatible endpoint). Each connection asks the route first; links, CBS tokens and
// messages it does not claim go to the device logic unchanged.
import type { EventContext, Receiver, Sender } from 'rhea';
import type { AmqpMessageLike } from './mapping.ts';

export type AmqpRouteProtocol = 'amqp' | 'amqp-ws';

/** One connection's view of a route. Every method returns quickly and never throws into rhea. */
export interface AmqpConnectionRoute {
  /** A CBS put-token: the reply when its audience is the route's, undefined to leave it to the device logic. */
  putToken(message: AmqpMessageLike): { status: number; description: string } | undefined;
  /** Our sender answering the peer's receiver; true when the route took (or refused) it. */
  senderOpened(sender: Sender): boolean;
  /** Our receiver answering the peer's sender; true when the route took (or refused) it. */
  receiverOpened(receiver: Receiver): boolean;
  /** A message on one of the route's receivers; true when it was the route's. */
  message(receiver: Receiver, ctx: EventContext): boolean;
  /** Credit arrived on a sender; true when it was the route's. */
  sendable(sender: Sender): boolean;
  linkClosed(link: Sender | Receiver): void;
  /** Whether a claim of the route is in force, which counts as authentication for pre-auth limits. */
  readonly authenticated: boolean;
  /** The transport is gone. */
  end(): void;
}

export interface AmqpRoute {
  open(connectionId: string, protocol: AmqpRouteProtocol): AmqpConnectionRoute;
}
