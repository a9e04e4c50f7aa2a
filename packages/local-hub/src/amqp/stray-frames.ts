// Frames for a session or a link that is already gone: dropped, as IoT Hub's AMQP stack
// (Microsoft.Azure.Amqp) drops them when its IgnoreMissingSessions / IgnoreMissingLinks settings are
// on, and always for an end or a detach, whose own close may simply have crossed it
// (AmqpConnection.OnReceiveSessionFrame, AmqpSession.OnReceiveLinkFrame).
//
// rhea instead throws and ends the socket without a close frame. That meets a real client:
// azure-iot-amqp-base, tearing its connection down after a forced detach, still sends on its twin
// link after detaching it and settles transfers that arrive after its own end (rhea writes link
// frames after a session's end), then sends its close and waits for the answer. A socket that ends
// instead left it 45 s in its 'disconnecting' state, every twin request and method call of that
// time going nowhere. Dropping, rather than Microsoft.Azure.Amqp's other answer (ending the
// session or closing the connection with an error), keeps the hub's own rhea from writing link
// frames after an end of its own, which would wedge the client the same way.
// rhea has no typed hook for this: its connection dispatches each frame to `on_<performative>`,
// which is the one place this reaches into.
import type { Connection } from 'rhea';

export type StrayFrame = 'attach' | 'detach' | 'transfer' | 'disposition' | 'flow' | 'end';

type FrameHandler = (frame: RheaFrame) => void;

interface RheaFrame {
  channel: number;
  performative?: { handle?: unknown; delivery_id?: unknown };
}

interface RheaInternals {
  /** rhea's sessions by the peer's channel number. */
  remote_channel_map?: Record<number, RheaSession | undefined>;
}

interface RheaSession {
  /** rhea's links by the peer's handle. */
  remote?: { handles?: Record<number, { is_remote_open(): boolean } | undefined> };
  /** rhea's count of the peer's transfers and deliveries on this session. */
  incoming?: { next_transfer_id: number; next_delivery_id: number | undefined };
}

/** What was dropped: the frame, and whether its session or only its link was gone. */
export interface DroppedFrame {
  performative: StrayFrame;
  channel: number;
  handle: number | undefined;
  gone: 'session' | 'link';
}

const SESSION_FRAMES: readonly StrayFrame[] = ['attach', 'detach', 'transfer', 'disposition', 'flow', 'end'];

/** Installs the filter on `connection` before any frame of it is read; `dropped` hears each drop. */
export function dropStrayFrames(connection: Connection, dropped: (frame: DroppedFrame) => void): void {
  const internals = connection as unknown as RheaInternals & Record<string, FrameHandler | undefined>;
  for (const name of SESSION_FRAMES) {
    const handler = internals[`on_${name}`];
    // A rhea that no longer dispatches this way keeps its own behaviour.
    if (typeof handler !== 'function') continue;
    internals[`on_${name}`] = (frame) => {
      const handle = typeof frame.performative?.handle === 'number' ? frame.performative.handle : undefined;
      const session = internals.remote_channel_map?.[frame.channel];
      if (session === undefined) return dropped({ performative: name, channel: frame.channel, handle, gone: 'session' });
      // A flow without a handle is the session's own; attach opens a link, so it has none yet.
      if (handle !== undefined && (name === 'transfer' || name === 'flow' || name === 'detach')) {
        const link = session.remote?.handles?.[handle];
        const attached = link !== undefined && (name === 'detach' || link.is_remote_open());
        if (!attached) {
          if (name === 'transfer') countTransfer(session, frame);
          // A flow's session-level part still counts; rhea applies it before it looks up the link.
          if (name === 'flow') {
            try {
              handler.call(connection, frame);
            } catch {
              // the link lookup refused it: dropped
            }
          }
          return dropped({ performative: name, channel: frame.channel, handle, gone: 'link' });
        }
      }
      handler.call(connection, frame);
    };
  }
}

/**
 * A dropped transfer still took its transfer id and, if it began a delivery, its delivery id:
 * rhea refuses the session's next delivery unless its count moves on as the peer's did.
 */
function countTransfer(session: RheaSession, frame: RheaFrame): void {
  const incoming = session.incoming;
  if (incoming === undefined) return;
  incoming.next_transfer_id++;
  const id = frame.performative?.delivery_id;
  if (typeof id === 'number' && (incoming.next_delivery_id === undefined || incoming.next_delivery_id === id)) incoming.next_delivery_id = id + 1;
}
