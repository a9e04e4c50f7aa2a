// How the hub settles what a peer sent it. rhea keeps every received delivery in its session's
// ring of 2,048 until this side marks it settled, frees them only in order, and offers the peer
// only the free part of that ring as its window. A delivery the peer sent pre-settled (the SDK's
// twin requests and method answers) wants no disposition, but must still be marked settled here,
// or it holds the ring for good and the whole session stops after 2,048 transfers.
import type { Delivery } from 'rhea';

export interface SettleError {
  condition: string;
  description: string;
}

export function settleIncoming(delivery: Delivery | undefined, error?: SettleError): void {
  if (!delivery) return;
  if (delivery.remote_settled) {
    delivery.update(true);
    return;
  }
  if (error) delivery.reject(error);
  else delivery.accept();
}
