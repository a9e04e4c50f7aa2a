// What keeps one identity's telemetry from wedging a session that other identities share.
//
// rhea (1.0.24) keeps every outgoing delivery of a session in one ring of 2048 and frees slots
// only from its oldest end, once a delivery is settled on both sides; it transfers queued
// deliveries strictly in order, stopping at the first whose link has no credit. Nothing in rhea
// lets go of a delivery whose link went away. On the shared control session of the lean engine
// (the CBS pair and every identity's links) one such delivery therefore holds the ring for
// everyone: a delivery sent on a link already detached is never settled by the hub, and 2048
// deliveries later no identity can send anything, not even the put-token that re-opens it (the
// soak's gateway, and a burst of KillAmqpC2DLink, left every identity `reconnecting`); a delivery
// queued beyond the link's credit when that link detaches is never transferred and stops every
// later transfer at once.
import type { Delivery, Sender } from 'rhea';

/** rhea's per-link transfer count, which it keeps off its typings. */
interface SenderCounters {
  delivery_count?: number;
}

/** rhea's outgoing side of a session, off its typings: the next delivery id it will transfer. */
interface OutgoingState {
  outgoing?: { next_pending_delivery?: number };
}

/**
 * How many more deliveries `sender` can be handed now without one waiting in rhea's queue for
 * credit: its credit less those already handed (`handed` since it was opened) and not yet
 * transferred. rhea's own `sendable()` counts credit only as deliveries go out, so a burst of
 * sends in one turn queues past it. Zero for a link that is no longer open both ways: what is
 * sent there is never transferred, or transferred on a handle the hub has given up.
 */
export function spareCredit(sender: Sender, handed: number): number {
  if (!sender.is_open()) return 0;
  const transferred = (sender as unknown as SenderCounters).delivery_count ?? 0;
  const queued = Math.max(0, handed - transferred);
  const credit = (sender as unknown as { credit?: number }).credit ?? 0;
  if (credit - queued <= 0) return 0;
  return sender.sendable() ? credit - queued : 0;
}

/**
 * Lets go of deliveries that were transferred on a link that is gone: per AMQP a detached link's
 * unsettled deliveries are not settled any more, so they are marked settled on both sides here,
 * and rhea frees their slots once they are the oldest. Their senders were already told the link
 * was lost (and send again). A delivery still queued (not transferred) cannot be taken out of
 * rhea's order and is left alone; spareCredit keeps there from being any.
 */
export function releaseAbandoned(deliveries: Iterable<Delivery>): void {
  for (const delivery of deliveries) {
    if (delivery.remote_settled) continue;
    const next = (delivery.link.session as unknown as OutgoingState).outgoing?.next_pending_delivery;
    if (next === undefined || delivery.id >= next) continue;
    const raw = delivery as unknown as { settled: boolean; remote_settled: boolean };
    raw.settled = true;
    raw.remote_settled = true;
  }
}
