// Guards the sender and receiver links of one azure-iot-amqp-base (1.x) client against a
// force-detach while they attach, on the instance we own; the SDK's modules stay untouched.
//
// When the connection drops without an AMQP error, the base client force-detaches its links with
// no error, and a link still attaching then calls its attach callback with none. The base
// client's attach callback takes that for success and calls `removeListener` on the link it has
// already forgotten (amqp.js:404 for receivers, :428 for senders): an uncaught TypeError from a
// callback, which takes the process down. The soak found it on the D2C sender between a network
// reset and KillAmqpD2CLink. Here a force-detach during 'attaching' always carries an error, so
// the callback takes its failure branch: the operation fails as not connected (retryable), and a
// link force-detached in any other state is untouched.

interface LinkLike {
  forceDetach?: (err?: unknown) => void;
  _fsm?: { state?: string };
}

const guardedLinks = new WeakSet<object>();
const guardedClients = new WeakSet<object>();

function notConnected(): Error {
  // Named as azure-iot-common's error, which is how the taxonomy (errors.ts) reads SDK errors.
  return Object.assign(new Error('the AMQP connection was lost while the link was attaching'), { name: 'NotConnectedError' });
}

/** Applies the guard to one link; anything that does not look like one is left alone. */
export function guardAttachingLink(link: unknown): void {
  if (typeof link !== 'object' || link === null || guardedLinks.has(link)) return;
  const l = link as LinkLike;
  const forceDetach = l.forceDetach;
  if (typeof forceDetach !== 'function' || typeof l._fsm !== 'object') return;
  guardedLinks.add(link);
  l.forceDetach = function guardedForceDetach(this: unknown, err?: unknown): void {
    forceDetach.call(this, err ?? (l._fsm?.state === 'attaching' ? notConnected() : err));
  };
}

/**
 * Guards every link the base client of an AMQP transport (`transport._amqp`) creates from now
 * on: its link tables become views that guard each link as it is stored.
 */
export function guardAmqpLinks(transport: unknown): void {
  const amqp = (transport as { _amqp?: Record<string, unknown> } | undefined)?._amqp;
  if (amqp === undefined || guardedClients.has(amqp)) return;
  for (const table of ['_senders', '_receivers']) {
    const links = amqp[table];
    if (typeof links !== 'object' || links === null) return;
  }
  guardedClients.add(amqp);
  for (const table of ['_senders', '_receivers']) {
    const links = amqp[table] as Record<string, unknown>;
    for (const link of Object.values(links)) guardAttachingLink(link);
    amqp[table] = new Proxy(links, {
      set(target, key, value) {
        guardAttachingLink(value);
        return Reflect.set(target, key, value);
      },
    });
  }
}
