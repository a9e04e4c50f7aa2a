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
   * `whenGone` registers a callback for the connection going away, which ends the wait at once:
   * nothing can answer over a connection that is gone.
   */
  closeAll(timeoutMs: number, whenGone?: (fn: () => void) => () => void): Promise<void>;
}

function addressOf(link: RheaLink): string | undefined {
  const terminus = (link as { is_sender(): boolean }).is_sender() ? link.target : link.source;
  const address = (terminus as { address?: unknown } | undefined)?.address;
  return typeof address === 'string' ? address : undefined;
}

/** Who hears about peer detaches; one object can serve many trackers. */
export interface PeerDetachListener {
  linkDetachedByPeer(detach: PeerDetach): void;
}

/**
 * One per session, and the object the Azure link classes get as their "session": a class with
 * prototype methods rather than closures, because the gateway keeps one per identity.
 */
class SessionLinkTracker implements LinkTracker {
  private links: Set<RheaLink> | undefined;
  private waiters: Set<() => void> | undefined;

  constructor(
    private readonly rheaSession: Session,
    private readonly listener: PeerDetachListener,
  ) {}

  get session(): Session {
    return this as unknown as Session;
  }

  open_sender(options: unknown): Sender {
    const link = this.rheaSession.open_sender(options as never);
    this.watch(link, 'sender_close');
    return link;
  }

  open_receiver(options: unknown): Receiver {
    const link = this.rheaSession.open_receiver(options as never);
    this.watch(link, 'receiver_close');
    return link;
  }

  openLinks(): RheaLink[] {
    return [...(this.links ?? [])];
  }

  closeAll(timeoutMs: number, whenGone?: (fn: () => void) => () => void): Promise<void> {
    const links = this.links;
    if (!links || links.size === 0) return Promise.resolve();
    for (const link of links) {
      if (!link.is_itself_closed()) link.close();
    }
    return new Promise<void>((resolve) => {
      const waiters = (this.waiters ??= new Set());
      const timer = setTimeout(done, timeoutMs);
      const unwatch = whenGone?.(done);
      function done(): void {
        clearTimeout(timer);
        unwatch?.();
        waiters.delete(check);
        resolve();
      }
      function check(): void {
        if (links!.size === 0) done();
      }
      waiters.add(check);
    });
  }

  private watch(link: RheaLink, closeEvent: 'sender_close' | 'receiver_close'): void {
    (this.links ??= new Set()).add(link);
    link.on(closeEvent, (context: EventContext) => this.closed(link, context));
  }

  private closed(link: RheaLink, context: EventContext): void {
    // rhea closes our end on the next tick after a peer detach, so "our end still open" here
    // means the peer started it; otherwise this is the answer to a detach we sent.
    const peerInitiated = !link.is_itself_closed();
    this.links?.delete(link);
    if (peerInitiated) {
      const error = (context.sender ?? context.receiver)?.error as AmqpError | undefined;
      this.listener.linkDetachedByPeer({ link, address: addressOf(link), error });
    }
    for (const check of [...(this.waiters ?? [])]) check();
  }
}

export function createLinkTracker(session: Session, listener: PeerDetachListener): LinkTracker {
  return new SessionLinkTracker(session, listener);
}

export function trackLinks(session: Session, onPeerDetach: (detach: PeerDetach) => void): LinkTracker {
  return new SessionLinkTracker(session, { linkDetachedByPeer: onPeerDetach });
}
