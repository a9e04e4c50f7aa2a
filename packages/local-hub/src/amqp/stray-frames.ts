// Frames for a session or a link that is already gone, answered as IoT Hub's AMQP stack
// (Microsoft.Azure.Amqp: AmqpConnection.OnReceiveSessionFrame, AmqpSession.OnReceiveLinkFrame)
// answers them. An end or a detach for something gone is dropped: its own close may simply have
// crossed it. Another frame on a channel without a session closes the connection with
// amqp:not-found; a transfer or flow for a link the peer has detached ends that session with
// amqp:session:unattached-handle. Either way the peer gets an AMQP answer in a frame.
//
// rhea instead throws and ends the socket without a close frame. That meets a real client:
// azure-iot-amqp-base, tearing its connection down after a forced detach, still sends on its
// twin link after detaching it, and still settles transfers that arrive after its own end; then it
// sends its close and waits for the answer. A socket that ends instead leaves it 45 s in its
// 'disconnecting' state, with every twin request and method call of that time going nowhere.
// rhea has no typed hook for this: its connection dispatches each frame to `on_<performative>`,
// which is the one place this reaches into.
import type { Connection, Session } from 'rhea';

export type StrayFrame = 'attach' | 'detach' | 'transfer' | 'disposition' | 'flow' | 'end';

type FrameHandler = (frame: RheaFrame) => void;

interface RheaFrame {
  channel: number;
  performative?: { handle?: unknown };
}

interface RheaInternals {
  /** rhea's sessions by the peer's channel number. */
  remote_channel_map?: Record<number, RheaSession | undefined>;
}

interface RheaSession {
  /** rhea's links by the peer's handle. */
  remote?: { handles?: Record<number, { is_remote_open(): boolean } | undefined> };
  is_itself_closed(): boolean;
  close(error?: { condition: string; description: string }): void;
}

export interface StrayFrameAnswers {
  /** A frame other than end or detach on a channel with no session: close the connection. */
  unknownChannel(channel: number, performative: StrayFrame): void;
  /** A transfer or flow for a link the peer detached (or never attached): end that session. */
  unattachedHandle(session: Session, handle: number, performative: StrayFrame): void;
}

const SESSION_FRAMES: readonly StrayFrame[] = ['attach', 'detach', 'transfer', 'disposition', 'flow', 'end'];

/** Installs the answers on `connection` before any frame of it is read. */
export function answerStrayFrames(connection: Connection, answers: StrayFrameAnswers): void {
  const internals = connection as unknown as RheaInternals & Record<string, FrameHandler | undefined>;
  for (const name of SESSION_FRAMES) {
    const handler = internals[`on_${name}`];
    // A rhea that no longer dispatches this way keeps its own behaviour.
    if (typeof handler !== 'function') continue;
    internals[`on_${name}`] = (frame) => {
      const session = internals.remote_channel_map?.[frame.channel];
      if (session === undefined) {
        if (name !== 'end' && name !== 'detach') answers.unknownChannel(frame.channel, name);
        return;
      }
      const handle = frame.performative?.handle;
      if ((name === 'transfer' || name === 'flow' || name === 'detach') && typeof handle === 'number') {
        const link = session.remote?.handles?.[handle];
        const attached = link !== undefined && (name === 'detach' || link.is_remote_open());
        if (!attached) {
          // A session already ending takes no second answer.
          if (name !== 'detach' && !session.is_itself_closed()) answers.unattachedHandle(session as unknown as Session, handle, name);
          return;
        }
      }
      handler.call(connection, frame);
    };
  }
}
