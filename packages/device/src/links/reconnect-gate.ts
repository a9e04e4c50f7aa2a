// One round of the SDK's reconnect per drop. The Azure clients answer every 'disconnect' their
// transport emits by starting a new retry chain for each feature in use (methods, desired updates,
// C2D: InternalClient's and DeviceClient's disconnect handlers), and every chain dials the hub. A
// dial that fails makes the transport emit 'disconnect' again, so each failed attempt started two
// or three more chains. Through an outage that refuses connections, one AMQP client with C2D and
// methods dialled the hub 20-38 times a second for as long as it lasted (MQTT about 9), and the
// chains it kept alive grew its heap by 50 MB and its RSS by 80 MB in 20 s (bench/README.md,
// "Soak"). `reconnectAttempts` promised 10 attempts with a doubling back-off.
//
// So the handlers the Azure client put on its transport hear the first 'disconnect' of a drop
// only: its chains then retry on their own back-off, and the drops of their failed dials still
// reach every other listener (the link's own). A 'connected' ends the drop.

type Listener = (...args: unknown[]) => void;

interface TransportLike {
  emit(event: string | symbol, ...args: unknown[]): boolean;
  rawListeners(event: string | symbol): Listener[];
}

const gated = new WeakSet<object>();

/**
 * Passes one 'disconnect' per drop to the 'disconnect' listeners `transport` has now (the Azure
 * client's own reconnect handlers); listeners added later hear every one. Once per transport;
 * anything without an EventEmitter's `emit` and `rawListeners` is left alone.
 */
export function oneReconnectPerDrop(transport: unknown): void {
  const t = transport as Partial<TransportLike> | undefined;
  if (t === undefined || t === null || typeof t.emit !== 'function' || typeof t.rawListeners !== 'function' || gated.has(t)) return;
  gated.add(t);
  const emitter = t as TransportLike;
  const sdkHandlers = new Set(emitter.rawListeners('disconnect'));
  if (sdkHandlers.size === 0) return;
  const emit = emitter.emit;
  let dropped = false;
  // An own property in front of EventEmitter's: the SDK emits through `this.emit`.
  emitter.emit = function gatedEmit(this: TransportLike, event: string | symbol, ...args: unknown[]): boolean {
    if (event === 'connected') dropped = false;
    else if (event === 'disconnect') {
      if (dropped) {
        // Raw: a `once` listener's wrapper removes itself when called.
        const others = this.rawListeners('disconnect').filter((listener) => !sdkHandlers.has(listener));
        for (const listener of others) listener.apply(this, args);
        return others.length > 0;
      }
      dropped = true;
    }
    return emit.call(this, event, ...args);
  };
}
