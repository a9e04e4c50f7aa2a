// Guards one azure-iot-device-amqp AmqpTwinClient (1.14.x) against its detach while its first
// attach is under way, on the instance we own; the SDK's module and prototype stay untouched.
//
// Its 'detaching' state captures `_senderLink` and `_receiverLink`, which stay null until the
// first attach of each completes, and calls `removeListener` on them in the callbacks of the base
// client's detachSenderLink/detachReceiverLink: a process.nextTick of azure-iot-amqp-base
// (amqp.js:775) or of the gateway's IdentityChannel. Entered from 'attaching' (a connection
// closed, e.g. replaced after an operation timed out, while the first twin request attaches its
// links; or a link error while the receiver attaches), that callback threw an uncaught TypeError.
// And the same detach loses its caller: the base client fails the attach in flight synchronously,
// the twin client moves to 'detached' on that failure, and the detach's own final move to
// 'detached' is then no move at all, so the callback the transport's disconnect waits for is
// never called. That transport then never reaches 'disconnected', never stops the authentication
// provider's token renewal timer (45 min, referenced), and keeps the process alive.

/** Stands for a link not attached yet: the listeners 'detaching' removes were never added to it. */
const UNATTACHED_LINK = Object.freeze({
  removeListener(): unknown {
    return UNATTACHED_LINK;
  },
});

interface TwinFsm {
  on(event: 'transitioned', listener: (data: { toState?: string }) => void): unknown;
  off(event: 'transitioned', listener: (data: { toState?: string }) => void): void;
}

interface TwinClientInternals {
  _senderLink?: unknown;
  _receiverLink?: unknown;
  _fsm?: Partial<TwinFsm>;
  detach?: (callback: (err?: unknown) => void) => void;
}

const guarded = new WeakSet<object>();

/** Applies the guard to a twin client; anything that does not look like one is left alone. */
export function guardTwinClient(twinClient: unknown): void {
  if (typeof twinClient !== 'object' || twinClient === null || guarded.has(twinClient)) return;
  const twin = twinClient as TwinClientInternals;
  const fsm = twin._fsm;
  const detach = twin.detach;
  if (!('_senderLink' in twin) || !('_receiverLink' in twin) || typeof detach !== 'function' || typeof fsm?.on !== 'function' || typeof fsm.off !== 'function') return;
  guarded.add(twinClient);
  // Nothing reads these links as "attached or not": only 'attached' sends on them, and it is
  // reached once both are set; the attach replaces the stand-in as it replaced the null.
  if (twin._senderLink === null) twin._senderLink = UNATTACHED_LINK;
  if (twin._receiverLink === null) twin._receiverLink = UNATTACHED_LINK;
  const machine = fsm as TwinFsm;
  twin.detach = (callback) => {
    let called = false;
    const once = (err?: unknown): void => {
      if (called) return;
      called = true;
      machine.off('transitioned', reached);
      callback(err);
    };
    // Whichever way the client gets to 'detached' (its own detach or the failed attach), the
    // caller hears of it; 'transitioned' follows the state's entry, where the detach's own
    // callback, with its error, is called first when it is called at all.
    const reached = (data: { toState?: string }): void => {
      if (data.toState === 'detached') once();
    };
    machine.on('transitioned', reached);
    detach.call(twinClient, once);
  };
}

/** The twin client of an azure-iot-device-amqp transport (its `_twinClient`), when it has one. */
export function guardTransportTwin(transport: unknown): void {
  if (typeof transport !== 'object' || transport === null) return;
  guardTwinClient((transport as { _twinClient?: unknown })._twinClient);
}
