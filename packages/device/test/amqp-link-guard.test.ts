// The guard against a link force-detached while it attaches, on the SDK's real SenderLink and
// ReceiverLink (azure-iot-amqp-base, resolved through azure-iot-device-amqp) over a stand-in for
// rhea's session: no sockets. Without it the attach callback hears success, which the base
// client's own callback (amqp.js:404/:428) turns into an uncaught TypeError (found by the soak).
import { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { guardAmqpLinks, guardAttachingLink } from '../src/links/amqp-link-guard.ts';

const requireFromAmqp = createRequire(createRequire(import.meta.url).resolve('azure-iot-device-amqp'));
const base = requireFromAmqp('azure-iot-amqp-base') as {
  SenderLink: new (endpoint: string, options: unknown, session: unknown) => { attach(cb: (err?: Error) => void): void; forceDetach(err?: Error): void };
  ReceiverLink: new (endpoint: string, options: unknown, session: unknown) => { attach(cb: (err?: Error) => void): void; forceDetach(err?: Error): void };
};

/** A rhea session whose links never finish attaching. */
const session = {
  open_sender: () => Object.assign(new EventEmitter(), { name: 'sender' }),
  open_receiver: () => Object.assign(new EventEmitter(), { name: 'receiver' }),
};

describe('the AMQP link attach guard', () => {
  for (const kind of ['SenderLink', 'ReceiverLink'] as const) {
    it(`${kind}: a force-detach with no error while attaching fails the attach as not connected`, () => {
      const link = new base[kind]('/devices/d/messages/events', {}, session);
      guardAttachingLink(link);
      const results: Array<Error | undefined> = [];
      (link as unknown as EventEmitter).on('error', () => undefined);
      link.attach((err) => results.push(err));
      link.forceDetach();
      // Before the guard: [undefined], the success the base client's callback then choked on.
      expect(results).toHaveLength(1);
      expect(results[0]?.name).toBe('NotConnectedError');
    });
  }

  it('leaves a force-detach with its own error, and one after the attach, as they were', () => {
    const link = new base.SenderLink('/devices/d/messages/events', {}, session);
    guardAttachingLink(link);
    const results: Array<Error | undefined> = [];
    (link as unknown as EventEmitter).on('error', () => undefined);
    link.attach((err) => results.push(err));
    const own = new Error('amqp:connection:forced');
    link.forceDetach(own);
    expect(results).toEqual([own]);
  });

  it('guards every link the base client stores, and leaves its link tables working', () => {
    const amqp = { _senders: {} as Record<string, unknown>, _receivers: {} as Record<string, unknown> };
    guardAmqpLinks({ _amqp: amqp });
    const link = new base.SenderLink('/devices/d/messages/events', {}, session);
    amqp._senders['/devices/d/messages/events'] = link;
    expect(amqp._senders['/devices/d/messages/events']).toBe(link);
    const results: Array<Error | undefined> = [];
    (link as unknown as EventEmitter).on('error', () => undefined);
    link.attach((err) => results.push(err));
    link.forceDetach();
    expect(results[0]?.name).toBe('NotConnectedError');
    delete amqp._senders['/devices/d/messages/events'];
    expect(amqp._senders['/devices/d/messages/events']).toBeUndefined();
  });
});
