// Watches the rhea links that the Azure link classes (SenderLink, ReceiverLink) open on one
// session. Those classes only report a peer detach *with* an error by emitting
// 'azure-iot-amqp-base:error-indicated' on the container, without saying which link it was; the
// stock base client answers that by tearing the whole connection down. On a shared connection we
// need to know *whose* link the peer closed, so each session is handed to the Azure classes
// through this proxy, which sees every link they open.
import type { AmqpError, EventContext, Receiver, Sender, Session } from 'rhea';

export type RheaLink = Sender | Receiver;

export interface PeerDetach {
  link: RheaLink;
  address: string | undefined;
  error: AmqpError | undefined;
}

export interface LinkTracker {
  /** What the Azure link classes get instead of the session; only `open_sender`/`open_receiver` are used. */
  readonly session: Session;
  /** Links opened on this session that have not been closed by the peer yet. */
  openLinks(): RheaLink[];
  /**
   * Closes every link that is still open on our side and resolves once the peer has answered all
   * of them, or after `timeoutMs`. The Azure link objects see an ordinary peer detach and end up
   * detached, so their owner can no longer detach them on a session that is about to end.
   */
  closeAll(timeoutMs: number): Promise<void>;
}

function addressOf(link: RheaLink): string | undefined {
  const terminus = (link as { is_sender(): boolean }).is_sender() ? link.target : link.source;
  const address = (terminus as { address?: unknown } | undefined)?.address;
  return typeof address === 'string' ? address : undefined;
}

export function trackLinks(session: Session, onPeerDetach: (detach: PeerDetach) => void): LinkTracker {
  const links = new Set<RheaLink>();
  const waiters = new Set<() => void>();

  const settleWaiters = (): void => {
    for (const check of [...waiters]) check();
  };

  const watch = <L extends RheaLink>(link: L, closeEvent: 'sender_close' | 'receiver_close'): L => {
    links.add(link);
    link.on(closeEvent, (context: EventContext) => {
      // rhea closes our end on the next tick after a peer detach, so "our end still open" here
      // means the peer started it; otherwise this is the answer to a detach we sent.
      const peerInitiated = !link.is_itself_closed();
      links.delete(link);
      if (peerInitiated) {
        const error = (context.sender ?? context.receiver)?.error as AmqpError | undefined;
        onPeerDetach({ link, address: addressOf(link), error });
      }
      settleWaiters();
    });
    return link;
  };

  const proxy = {
    open_sender: (options: unknown) => watch(session.open_sender(options), 'sender_close'),
    open_receiver: (options: unknown) => watch(session.open_receiver(options), 'receiver_close'),
  } as unknown as Session;

  return {
    session: proxy,
    openLinks: () => [...links],
    closeAll(timeoutMs: number): Promise<void> {
      for (const link of links) {
        if (!link.is_itself_closed()) link.close();
      }
      if (links.size === 0) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const timer = setTimeout(done, timeoutMs);
        function done(): void {
          clearTimeout(timer);
          waiters.delete(check);
          resolve();
        }
        function check(): void {
          if (links.size === 0) done();
        }
        waiters.add(check);
      });
    },
  };
}
