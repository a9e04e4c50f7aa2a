// How many more deliveries a sender link can take now. rhea spends link credit only when it
// writes a transfer, so credit alone would let a pump hand rhea far more than the peer granted;
// deliveries queued in rhea but not yet written count against the credit. rhea 3 marks nothing
// as sent, but writes a session's deliveries in id order: those below the session's
// next_pending_delivery are out. The session's window of unsettled deliveries is finite too
// (rhea throws past it), which `sendable()` reports.
import type { Delivery, Sender } from 'rhea';

export function sendCapacity(sender: Sender, unwritten: Set<Delivery>): number {
  if (!sender.sendable()) return 0;
  const outgoing = (sender as unknown as { session?: { outgoing?: { next_pending_delivery?: number } } }).session?.outgoing;
  const written = outgoing?.next_pending_delivery ?? Number.POSITIVE_INFINITY;
  for (const d of unwritten) if ((d as unknown as { id: number }).id < written) unwritten.delete(d);
  const credit = (sender as unknown as { credit?: number }).credit ?? 0;
  return credit - unwritten.size;
}
