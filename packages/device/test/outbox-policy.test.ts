// The outbox's logic over a stand-in for the client (no sockets): order, replay after a failure
// and a reconnect, stable ids, the full policies, TTL on a ManualClock, and replay after a
// restart from its directory.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { isSwitchyardError, SwitchyardError } from '@switchyard/errors';
import { ManualClock } from '@switchyard/time';
import type { DeviceMessage } from '../src/index.ts';
import { Outbox, type OutboxHost } from '../src/internal.ts';
import type { OutboxBatching, OutboxDroppedEvent } from '../src/outbox/outbox.ts';

class FakeHost implements OutboxHost {
  readonly protocol = 'mqtt' as const;
  readonly identity = undefined;
  readonly clock = new ManualClock(1_000_000);
  readonly attempts: Array<{ message: DeviceMessage & { messageId: string }; done: (err?: unknown) => void }> = [];
  readonly drops: OutboxDroppedEvent[] = [];
  attempt(message: DeviceMessage, done: (err?: unknown) => void): void {
    this.attempts.push({ message: message as DeviceMessage & { messageId: string }, done });
  }
  dropped(event: OutboxDroppedEvent): void {
    this.drops.push(event);
  }
  /** Acknowledges every attempt made so far, oldest first; returns their bodies. */
  ackAll(): string[] {
    const all = this.attempts.splice(0);
    for (const a of all) a.done();
    return all.map((a) => String(a.message.body));
  }
}

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function outboxWith(options: Parameters<typeof Outbox.open>[0] = {}): Promise<{ outbox: Outbox; host: FakeHost }> {
  const host = new FakeHost();
  const outbox = (await Outbox.open(options)).bind(host);
  outbox.resume();
  return { outbox, host };
}

const send = (outbox: Outbox, body: string, until: 'queued' | 'acknowledged' = 'acknowledged') => outbox.send('sendEvent', [body], { signal: undefined, timeoutMs: 60_000, until });
const notConnected = () => new SwitchyardError('NOT_CONNECTED', 'link down');

describe('outbox order and replay', () => {
  it('sends in order, resolves each on its acknowledgement, and counts depth and bytes', async () => {
    const { outbox, host } = await outboxWith();
    const sent = ['a', 'bb', 'ccc'].map((b) => send(outbox, b));
    expect(outbox.depth).toBe(3);
    expect(outbox.bytes).toBe(6);
    host.clock.advance(250);
    expect(outbox.oldestAgeMs).toBe(250);
    expect(host.attempts.map((a) => a.message.body)).toEqual(['a', 'bb', 'ccc']);
    host.ackAll();
    await Promise.all(sent);
    expect(outbox.depth).toBe(0);
    expect(outbox.bytes).toBe(0);
    expect(outbox.oldestAgeMs).toBe(0);
  });

  it('gives a message without an id a stable one, kept on every attempt; keeps the caller\'s own', async () => {
    const { outbox, host } = await outboxWith();
    const pending = [send(outbox, 'x'), outbox.send('sendEvent', [{ body: 'y', messageId: 'mine' }], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' })];
    const first = host.attempts.splice(0);
    const ids = first.map((a) => a.message.messageId);
    expect(ids[0]).toMatch(/^[A-Za-z0-9_-]{13}$/);
    expect(ids[1]).toBe('mine');
    for (const a of first) a.done(notConnected());
    outbox.resume();
    expect(host.attempts.map((a) => a.message.messageId)).toEqual(ids);
    host.ackAll();
    await Promise.all(pending);
  });

  it('while the link is down, tries it with one attempt after each back-off; once it is back, the rest after that attempt\'s answer', async () => {
    const { outbox, host } = await outboxWith();
    outbox.retryLater();
    const sent = ['a', 'b', 'c'].map((b) => send(outbox, b));
    expect(host.attempts).toHaveLength(0);
    // The first back-off is at most 750 ms (500 ms, jitter 0.5); the second at most 1.5 s.
    host.clock.advance(1_000);
    // One attempt dials the hub once; three would dial it three times (the SDK connects on demand).
    expect(host.attempts.map((a) => a.message.body)).toEqual(['a']);
    host.attempts.splice(0)[0]!.done(notConnected());
    expect(host.attempts).toHaveLength(0);
    host.clock.advance(2_000);
    expect(host.attempts.map((a) => a.message.body)).toEqual(['a']);
    // Back while that attempt is still on its way: its transport may send it after anything sent
    // now, so the rest waits for its answer, and order holds.
    outbox.resume();
    expect(host.attempts.map((a) => a.message.body)).toEqual(['a']);
    expect(host.ackAll()).toEqual(['a']);
    expect(host.attempts.map((a) => a.message.body)).toEqual(['b', 'c']);
    host.ackAll();
    await Promise.all(sent);
    expect(outbox.depth).toBe(0);
  });

  it('after a failed attempt holds new sends until the connection is back, then replays from the oldest, in order', async () => {
    const { outbox, host } = await outboxWith();
    const pending = ['1', '2', '3'].map((b) => send(outbox, b));
    const [one, two, three] = host.attempts.splice(0);
    two!.done(notConnected());
    one!.done(); // acknowledged before the failure was seen: it is not sent again
    three!.done(notConnected());
    outbox.pause();
    pending.push(send(outbox, '4'));
    expect(host.attempts).toHaveLength(0);
    outbox.resume();
    expect(host.ackAll()).toEqual(['2', '3', '4']);
    await Promise.all(pending);
  });

  it('retries by itself after a back-off on the clock when nothing reports a reconnect', async () => {
    const { outbox, host } = await outboxWith();
    const pending = send(outbox, 'p');
    host.attempts.splice(0)[0]!.done(notConnected());
    expect(host.attempts).toHaveLength(0);
    host.clock.advance(30_000);
    expect(host.ackAll()).toEqual(['p']);
    await pending;
  });

  it('fails an attempt past its deadline and sends it again; a late answer to the first settles neither', async () => {
    const host = new FakeHost();
    const timedOut: number[] = [];
    const states: Array<{ handedOver: boolean; epoch: number }> = [];
    const timed: OutboxHost = {
      protocol: host.protocol,
      identity: undefined,
      clock: host.clock,
      attemptTimeoutMs: 5_000,
      attemptTimedOut: (epoch) => timedOut.push(epoch),
      attempt: (message, done, state) => {
        state.handedOver = true;
        state.epoch = 7;
        states.push(state);
        host.attempt(message, done);
      },
      dropped: (event) => host.dropped(event),
    };
    const outbox = (await Outbox.open({})).bind(timed);
    outbox.resume();
    let settled = false;
    const sent = send(outbox, 'a').then(() => (settled = true));
    const first = host.attempts.shift()!;
    host.clock.advance(4_999);
    expect(timedOut).toEqual([]);
    host.clock.advance(1);
    expect(timedOut).toEqual([7]);
    outbox.resume();
    const second = host.attempts.shift()!;
    expect(second.message.messageId).toBe(first.message.messageId);
    // The first attempt's answer arrives while the second is on the wire (a connection replaced
    // after the timeout ends its sends): it is not the second's answer, success or failure.
    first.done();
    first.done(new SwitchyardError('NOT_CONNECTED', 'old connection closed'));
    await Promise.resolve();
    expect(settled).toBe(false);
    expect(outbox.depth).toBe(1);
    expect(host.attempts).toHaveLength(0);
    second.done();
    await sent;
    expect(outbox.depth).toBe(0);
    // Acknowledged: its deadline is gone, so nothing fires later.
    host.clock.advance(60_000);
    expect(timedOut).toEqual([7]);
    expect(host.attempts).toHaveLength(0);
    await outbox.close();
  });

  it('drops a message the hub can never take (too large) with an event, and goes on with the next', async () => {
    const { outbox, host } = await outboxWith();
    const big = send(outbox, 'big');
    const next = send(outbox, 'next');
    const [first, second] = host.attempts.splice(0);
    first!.done(new SwitchyardError('MESSAGE_TOO_LARGE', 'too large'));
    second!.done();
    await expect(big).rejects.toMatchObject({ code: 'MESSAGE_TOO_LARGE' });
    await next;
    expect(host.drops).toEqual([expect.objectContaining({ reason: 'unsendable', messageIds: [first!.message.messageId] })]);
  });

  it('until: queued resolves before the hub acknowledges; drain() waits for the acknowledgement', async () => {
    const { outbox, host } = await outboxWith();
    await send(outbox, 'q', 'queued');
    expect(outbox.depth).toBe(1);
    let drained = false;
    const drain = outbox.drain().then(() => (drained = true));
    await Promise.resolve();
    expect(drained).toBe(false);
    host.ackAll();
    await drain;
    expect(outbox.depth).toBe(0);
  });

  it('a caller whose deadline passes gets TIMEOUT saying the message stays queued; it is still delivered', async () => {
    const { outbox, host } = await outboxWith();
    const pending = outbox.send('sendEvent', ['late'], { signal: undefined, timeoutMs: 1_000, until: 'acknowledged' });
    host.clock.advance(1_000);
    const error = await pending.catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'TIMEOUT')).toBe(true);
    expect((error as SwitchyardError).details).toMatchObject({ delivered: 'unknown', queued: true });
    expect(outbox.depth).toBe(1);
    host.ackAll();
    expect(outbox.depth).toBe(0);
  });
});

describe('outbox when full', () => {
  it('reject-new refuses with QUOTA_EXCEEDED naming the limit, and queues nothing', async () => {
    const { outbox, host } = await outboxWith({ maxMessages: 2 });
    outbox.pause();
    const kept = [send(outbox, 'a'), send(outbox, 'b')];
    const error = await send(outbox, 'c').catch((e: unknown) => e);
    expect(isSwitchyardError(error, 'QUOTA_EXCEEDED')).toBe(true);
    expect((error as SwitchyardError).details).toMatchObject({ quota: 'outbox', maxMessages: 2, depth: 2, whenFull: 'reject-new', delivered: 'no' });
    expect((error as SwitchyardError).retryable).toBe(true);
    expect(outbox.depth).toBe(2);
    outbox.resume();
    expect(host.ackAll()).toEqual(['a', 'b']);
    await Promise.all(kept);
  });

  it('reject-new also holds to maxBytes', async () => {
    const { outbox } = await outboxWith({ maxBytes: 10 });
    outbox.pause();
    void send(outbox, '12345678');
    await expect(send(outbox, '123')).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { maxBytes: 10 } });
  });

  it('drop-oldest drops the oldest waiting messages, says which, and rejects their callers', async () => {
    const { outbox, host } = await outboxWith({ maxMessages: 3, whenFull: 'drop-oldest' });
    outbox.pause();
    const a = send(outbox, 'a');
    const b = send(outbox, 'b');
    const rest = [send(outbox, 'c'), send(outbox, 'd'), send(outbox, 'e')];
    await expect(a).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED', details: { reason: 'dropped' } });
    await expect(b).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    expect(host.drops.map((d) => d.reason)).toEqual(['full', 'full']);
    expect(host.drops.flatMap((d) => d.messageIds)).toHaveLength(2);
    outbox.resume();
    expect(host.ackAll()).toEqual(['c', 'd', 'e']);
    await Promise.all(rest);
  });

  it('drop-oldest never drops a message on the wire', async () => {
    const { outbox, host } = await outboxWith({ maxMessages: 1, whenFull: 'drop-oldest' });
    const first = send(outbox, 'on-the-wire');
    await expect(send(outbox, 'second')).rejects.toMatchObject({ code: 'QUOTA_EXCEEDED' });
    host.ackAll();
    await first;
  });
});

describe('outbox TTL on a ManualClock', () => {
  it('drops messages not acknowledged within ttlMs, with an event, oldest first', async () => {
    const { outbox, host } = await outboxWith({ ttlMs: 5_000 });
    outbox.pause();
    const old = send(outbox, 'old');
    host.clock.advance(3_000);
    const young = send(outbox, 'young');
    host.clock.advance(2_000);
    await expect(old).rejects.toMatchObject({ code: 'TIMEOUT', details: { reason: 'expired' } });
    expect(host.drops).toEqual([expect.objectContaining({ reason: 'expired', messageIds: [expect.any(String)] })]);
    expect(outbox.depth).toBe(1);
    host.clock.advance(2_999);
    expect(outbox.depth).toBe(1);
    host.clock.advance(1);
    await expect(young).rejects.toMatchObject({ code: 'TIMEOUT' });
    expect(outbox.depth).toBe(0);
  });

  it('judges a message on the wire when its attempt ends, not while the hub may be acknowledging it', async () => {
    const { outbox, host } = await outboxWith({ ttlMs: 1_000 });
    const pending = send(outbox, 'wire');
    host.clock.advance(2_000);
    expect(outbox.depth).toBe(1);
    host.attempts.splice(0)[0]!.done(notConnected());
    await expect(pending).rejects.toMatchObject({ code: 'TIMEOUT', details: { reason: 'expired' } });
    expect(host.drops.map((d) => d.reason)).toEqual(['expired']);
  });
});

describe('outbox with a directory', () => {
  it('replays what was not acknowledged after a restart, in order, with the same ids and bodies', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-restart-'));
    dirs.push(dir);
    const first = await outboxWith({ dir });
    for (const body of ['r1', 'r2', 'r3', 'r4']) await send(first.outbox, body, 'queued');
    await first.outbox.send('sendEvent', [{ body: Buffer.from([0, 1, 2]), properties: { k: 'v' }, contentType: 'application/octet-stream' }], { signal: undefined, timeoutMs: 60_000, until: 'queued' });
    const attempts = first.host.attempts.splice(0);
    attempts[0]!.done();
    attempts[2]!.done();
    await first.outbox.close();

    const second = await outboxWith({ dir });
    expect(second.outbox.depth).toBe(3);
    const replayed = second.host.attempts.map((a) => a.message);
    expect(replayed.map((m) => m.messageId)).toEqual([attempts[1], attempts[3], attempts[4]].map((a) => a!.message.messageId));
    expect(replayed.slice(0, 2).map((m) => m.body)).toEqual(['r2', 'r4']);
    expect(replayed[2]).toMatchObject({ body: Buffer.from([0, 1, 2]), properties: { k: 'v' }, contentType: 'application/octet-stream' });
    second.host.ackAll();
    await second.outbox.drain();
    await second.outbox.close();
    const third = await outboxWith({ dir });
    expect(third.outbox.depth).toBe(0);
    await third.outbox.close();
  });
});

/** A host whose link sends batches (as HTTPS does): each batch is one attempt. */
class BatchingHost extends FakeHost {
  readonly batches: Array<{ messages: Array<DeviceMessage & { messageId: string }>; done: (err?: unknown) => void }> = [];
  readonly batch: OutboxBatching = {
    maxBytes: 100,
    bytesOf: (message) => String(message.body).length,
    attempt: (messages, done) => {
      this.batches.push({ messages: messages as Array<DeviceMessage & { messageId: string }>, done });
    },
  };
}

async function batchingOutbox(options: Parameters<typeof Outbox.open>[0] = {}): Promise<{ outbox: Outbox; host: BatchingHost }> {
  const host = new BatchingHost();
  const outbox = (await Outbox.open(options)).bind(host);
  outbox.resume();
  return { outbox, host };
}

const bodies = (batch: { messages: DeviceMessage[] }): string[] => batch.messages.map((m) => String(m.body));

describe('outbox over a link that sends batches', () => {
  it('sends what was queued in one turn as batches in order, within maxBytes and the window; a batch ack acknowledges all of its messages', async () => {
    const { outbox, host } = await batchingOutbox();
    // 100 messages of 10 bytes: batches of 10 by bytes.
    const all = Array.from({ length: 100 }, (_, i) => `m-${String(i).padStart(8, '0')}`);
    const sent = outbox.send('sendEventBatch', all, { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' });
    await Promise.resolve();
    expect(host.attempts).toHaveLength(0);
    // The window (64 messages) holds 6 full batches and a part of the seventh.
    expect(host.batches.map((b) => b.messages.length)).toEqual([10, 10, 10, 10, 10, 10, 4]);
    expect(host.batches.flatMap(bodies)).toEqual(all.slice(0, 64));
    for (const b of host.batches.splice(0)) b.done();
    expect(host.batches.flatMap(bodies)).toEqual(all.slice(64));
    for (const b of host.batches.splice(0)) b.done();
    await sent;
    expect(outbox.depth).toBe(0);
  });

  it('gathers sendEvent calls of one turn into a batch', async () => {
    const { outbox, host } = await batchingOutbox();
    const sent = ['a', 'b', 'c'].map((b) => send(outbox, b));
    await Promise.resolve();
    expect(host.batches.map(bodies)).toEqual([['a', 'b', 'c']]);
    host.batches[0]!.done();
    await Promise.all(sent);
  });

  it('a message larger than a batch goes alone, in its place in the order', async () => {
    const { outbox, host } = await batchingOutbox();
    const big = 'x'.repeat(150);
    const sent = outbox.send('sendEventBatch', ['a', 'b', big, 'c', 'd'], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' });
    await Promise.resolve();
    expect(host.batches.map(bodies)).toEqual([['a', 'b'], ['c', 'd']]);
    expect(host.attempts.map((a) => a.message.body)).toEqual([big]);
    for (const b of host.batches.splice(0)) b.done();
    host.ackAll();
    await sent;
  });

  it('a failed batch is sent again whole, in order, once the connection is back', async () => {
    const { outbox, host } = await batchingOutbox();
    const sent = outbox.send('sendEventBatch', ['a', 'b', 'c'], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' });
    await Promise.resolve();
    host.batches.splice(0)[0]!.done(notConnected());
    expect(outbox.depth).toBe(3);
    outbox.resume();
    expect(host.batches.map(bodies)).toEqual([['a', 'b', 'c']]);
    host.batches[0]!.done();
    await sent;
  });

  it('a batch refused as unsendable is split: its messages go one by one and only the one the hub refuses is dropped', async () => {
    const { outbox, host } = await batchingOutbox();
    const a = send(outbox, 'a');
    const bad = send(outbox, 'bad');
    const c = send(outbox, 'c');
    await Promise.resolve();
    host.batches.splice(0)[0]!.done(new SwitchyardError('MESSAGE_TOO_LARGE', 'too large'));
    expect(host.attempts.map((x) => x.message.body)).toEqual(['a', 'bad', 'c']);
    const [one, two, three] = host.attempts.splice(0);
    one!.done();
    two!.done(new SwitchyardError('MESSAGE_TOO_LARGE', 'too large'));
    three!.done();
    await a;
    await c;
    await expect(bad).rejects.toMatchObject({ code: 'MESSAGE_TOO_LARGE' });
    expect(host.drops).toEqual([expect.objectContaining({ reason: 'unsendable', messageIds: [two!.message.messageId] })]);
  });
});
