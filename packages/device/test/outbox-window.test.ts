// How many messages the outbox puts on the wire at once, per protocol, over a stand-in for the
// client (no sockets). Over HTTPS every message is a request of its own, which the hub takes in
// the order the requests arrive, so only one at a time keeps the queue's order at the hub. With a
// directory, an acknowledged message keeps its place in the window until its ack is in the log,
// so a crash copies at most a window of messages (test/fault-restart-device.test.ts shows both
// against the local hub).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import type { Protocol } from '@switchyard/profile';
import type { DeviceMessage } from '../src/index.ts';
import { decodeLog, liveEntries, LOG_FILE, Outbox, OUTBOX_WINDOW, type OutboxHost } from '../src/internal.ts';

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

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function queued(protocol: Protocol, count: number, dir?: string): Promise<{ h: ReturnType<typeof host>; sent: Promise<void>[]; outbox: Outbox }> {
  const h = host(protocol);
  const outbox = (await Outbox.open(dir === undefined ? {} : { dir })).bind(h);
  outbox.resume();
  const sent = Array.from({ length: count }, (_, i) => outbox.send('sendEvent', [`m-${i}`], { signal: undefined, timeoutMs: 60_000, until: 'acknowledged' }));
  return { h, sent, outbox };
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

  it('with a directory, refills a place of the window only once the ack of the message that held it is in the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'outbox-window-'));
    dirs.push(dir);
    const { h, sent, outbox } = await queued('mqtt', OUTBOX_WINDOW + 1, dir);
    expect(h.attempts).toHaveLength(OUTBOX_WINDOW);
    let liveAtRefill: number[] | undefined;
    const attempt = h.attempt;
    h.attempt = (message, done, state) => {
      liveAtRefill ??= liveEntries(decodeLog(readFileSync(join(dir, LOG_FILE))).records).map((e) => e.seq);
      attempt(message, done, state);
    };
    h.attempts.shift()!.done();
    // Acknowledged in memory, not yet in the file: a crash now would send it again, so its place stays taken.
    expect(h.attempts).toHaveLength(OUTBOX_WINDOW - 1);
    for (let turn = 0; turn < 10 && h.attempts.length < OUTBOX_WINDOW; turn++) await new Promise((resolve) => setImmediate(resolve));
    expect(h.attempts.at(-1)?.body).toBe(`m-${OUTBOX_WINDOW}`);
    // When the next message went out, the file no longer held the first one.
    expect(liveAtRefill).toHaveLength(OUTBOX_WINDOW);
    expect(liveAtRefill).not.toContain(1);
    for (const attempt of h.attempts.splice(0)) attempt.done();
    await Promise.all(sent);
    await outbox.close();
  });

  it('a link that fails every attempt at once (synchronously) neither spins nor floods: one attempt, then the back-off', async () => {
    const h = host('mqtt');
    let attempts = 0;
    h.attempt = (_message, done) => {
      attempts++;
      done(Object.assign(new Error('socket gone'), { code: 'ECONNRESET' }));
    };
    const outbox = (await Outbox.open({})).bind(h);
    outbox.resume();
    const queued = Array.from({ length: 100 }, (_, i) => outbox.send('sendEvent', [`m-${i}`], { signal: undefined, timeoutMs: 60_000, until: 'queued' }));
    await Promise.all(queued);
    // Before the fix the pump looped forever here, re-trying the head of the queue.
    expect(attempts).toBe(1);
    expect(outbox.depth).toBe(100);
    // The first back-off is 250-500 ms (jittered), the next at least 500 ms more: after 500 ms
    // exactly one retry has run, whatever the jitter drew (1 000 ms let a second one in, 1 run in 4).
    await (h.clock as ManualClock).advanceAsync(500);
    expect(attempts).toBe(2);
    h.attempt = (_message, done) => {
      attempts++;
      done();
    };
    await (h.clock as ManualClock).advanceAsync(60_000);
    expect(outbox.depth).toBe(0);
    await outbox.close();
  });
});
