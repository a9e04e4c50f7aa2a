// How many messages the outbox puts on the wire at once, per protocol, over a stand-in for the
// client (no sockets). Over HTTPS every message is a request of its own, which the hub takes in
// the order the requests arrive, so only one at a time keeps the queue's order at the hub
// (test/fault-restart-device.test.ts shows it against the local hub).
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import type { Protocol } from '@switchyard/profile';
import type { DeviceMessage } from '../src/index.ts';
import { Outbox, OUTBOX_WINDOW, type OutboxHost } from '../src/internal.ts';

function host(protocol: Protocol): OutboxHost & { attempts: Array<{ body: unknown; done: (err?: unknown) => void }> } {
  const attempts: Array<{ body: unknown; done: (err?: unknown) => void }> = [];
  return {
    protocol,
    identity: undefined,
    clock: new ManualClock(0),
    attempts,
    attempt: (message: DeviceMessage, done) => void attempts.push({ body: message.body, done }),
    dropped: () => undefined,
  };
}

async function queued(protocol: Protocol, count: number): Promise<{ h: ReturnType<typeof host>; sent: Promise<void>[] }> {
  const h = host(protocol);
  const outbox = (await Outbox.open({})).bind(h);
  outbox.resume();
  const sent = Array.from({ length: count }, (_, i) => outbox.send('sendEvent', [`m-${i}`], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' }));
  return { h, sent };
}

describe('the outbox window', () => {
  it('over HTTPS sends one message at a time, the next only once the hub acknowledged the last', async () => {
    const { h, sent } = await queued('https', 3);
    const order: unknown[] = [];
    for (let i = 0; i < 3; i++) {
      expect(h.attempts).toHaveLength(1);
      const attempt = h.attempts.shift()!;
      order.push(attempt.body);
      attempt.done();
    }
    expect(order).toEqual(['m-0', 'm-1', 'm-2']);
    await Promise.all(sent);
  });

  it.each<Protocol>(['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws'])('over %s keeps up to OUTBOX_WINDOW on the wire', async (protocol) => {
    const { h, sent } = await queued(protocol, OUTBOX_WINDOW + 1);
    expect(h.attempts).toHaveLength(OUTBOX_WINDOW);
    h.attempts.shift()!.done();
    expect(h.attempts.at(-1)?.body).toBe(`m-${OUTBOX_WINDOW}`);
    for (const attempt of h.attempts.splice(0)) attempt.done();
    await Promise.all(sent);
  });
});
