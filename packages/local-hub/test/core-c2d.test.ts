import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createHubCore, HubError, LIMITS, ManualClock, openHubStore, resolveC2DOptions, silentLogger, type LocalHubCore, type LockedC2DMessage } from '../src/internal.ts';

// The hub runs on a manual clock: locks and TTLs lapse when the test moves time, never by waiting.
let clock: ManualClock;
let core: LocalHubCore;

beforeEach(() => {
  clock = new ManualClock(Date.UTC(2026, 0, 1));
  core = createHubCore({ hostName: 'unit-hub.azure-devices.net', store: openHubStore({ inMemory: true }), logger: silentLogger, clock });
  core.createDevice('d');
});

afterEach(() => core.close());

function send(text: string, ttlSeconds?: number): void {
  core.sendC2D('d', { body: Buffer.from(text), ...(ttlSeconds === undefined ? {} : { ttlSeconds }) });
}

function hubErrorOf(fn: () => unknown): HubError {
  try {
    fn();
  } catch (error) {
    if (error instanceof HubError) return error;
    throw error;
  }
  throw new Error('expected a HubError');
}

describe('C2D queue', () => {
  it('holds 50 messages, then refuses with 403004', () => {
    for (let i = 0; i < LIMITS.c2dQueueDepth; i++) send(`m${i}`);
    const error = hubErrorOf(() => send('one too many'));
    expect(error.kind).toBe('DeviceMaximumQueueDepthExceeded');
    expect(error.errorCode).toBe(403004);
    // Locked messages still occupy the queue.
    expect(core.pollC2D('d')).toBeDefined();
    expect(hubErrorOf(() => send('still full')).errorCode).toBe(403004);
    expect(core.stats().devices['d']?.queuedC2D).toBe(50);
  });

  it('refuses bodies over 64 KB and TTLs of 0, below, or over 2 days', () => {
    expect(hubErrorOf(() => core.sendC2D('d', { body: Buffer.alloc(64 * 1024 + 1) })).kind).toBe('MessageTooLarge');
    expect(hubErrorOf(() => send('none', 0)).kind).toBe('ArgumentInvalid');
    expect(hubErrorOf(() => send('negative', -1)).kind).toBe('ArgumentInvalid');
    expect(hubErrorOf(() => send('long', 2 * 24 * 3600 + 1)).kind).toBe('ArgumentInvalid');
    expect(hubErrorOf(() => core.sendC2D('ghost', { body: Buffer.from('x') })).errorCode).toBe(404001);
  });

  it('takes a per-message expiry under a minute, as IoT Hub does, and honours it', () => {
    send('brief', 5);
    send('kept');
    clock.advance(5_001);
    expect(core.pollC2D('d')?.body.toString()).toBe('kept');
    expect(core.counters('d').c2dDeadLettered).toBe(1);
  });

  it('dead-letters a message whose TTL passed (default 1 hour)', () => {
    send('short', 60);
    send('default');
    clock.advance(61_000);
    expect(core.pollC2D('d')?.body.toString()).toBe('default');
    expect(core.counters('d').c2dDeadLettered).toBe(1);
    clock.advance(3600_000 - 61_000 - 1);
    expect(core.stats().devices['d']?.queuedC2D).toBe(1);
    clock.advance(1);
    expect(core.pollC2D('d')).toBeUndefined();
    expect(core.counters('d').c2dDeadLettered).toBe(2);
  });

  it('locks for 60 s; lock expiry requeues without counting a delivery', () => {
    send('a');
    const first = core.pollC2D('d')!;
    expect(first.lockedUntil).toBe(clock.now() + 60_000);
    expect(core.pollC2D('d')).toBeUndefined();
    clock.advance(59_999);
    expect(core.pollC2D('d')).toBeUndefined();
    clock.advance(1);
    const again = core.pollC2D('d')!;
    expect(again.messageId).toBe(first.messageId);
    expect(again.deliveryCount).toBe(0);
    expect(again.lockToken).not.toBe(first.lockToken);
  });

  it('settling after the lock expired is 412002 DeviceMessageLockLost', () => {
    send('a');
    const locked = core.pollC2D('d')!;
    clock.advance(60_000);
    const error = hubErrorOf(() => core.settleC2D('d', locked.lockToken, 'complete'));
    expect(error.kind).toBe('DeviceMessageLockLost');
    expect(error.errorCode).toBe(412002);
    expect(hubErrorOf(() => core.settleC2D('d', 'no-such-token', 'complete')).errorCode).toBe(412002);
  });

  it('takes another lock timeout when started with one, for redelivery tests that cannot wait a minute', () => {
    const short = createHubCore({ hostName: 'unit-hub.azure-devices.net', store: openHubStore({ inMemory: true }), logger: silentLogger, clock, c2d: resolveC2DOptions({ lockTimeoutMs: 2_000 }) });
    try {
      short.createDevice('d');
      short.sendC2D('d', { body: Buffer.from('a') });
      const first = short.pollC2D('d')!;
      expect(first.lockedUntil).toBe(clock.now() + 2_000);
      clock.advance(1_999);
      expect(short.pollC2D('d')).toBeUndefined();
      clock.advance(1);
      const again = short.pollC2D('d')!;
      expect(again.messageId).toBe(first.messageId);
      expect(again.deliveryCount).toBe(0);
      const error = hubErrorOf(() => short.settleC2D('d', first.lockToken, 'complete'));
      expect(error.errorCode).toBe(412002);
      expect(error.message).toContain('(2 s)');
    } finally {
      short.close();
    }
  });

  it('refuses a lock timeout that is not an integer from 1 ms to 5 minutes, naming the field', () => {
    expect(resolveC2DOptions()).toEqual({ lockTimeoutMs: LIMITS.c2dLockMs });
    for (const lockTimeoutMs of [0, -1, 1.5, 300_001, Number.NaN]) {
      expect(() => resolveC2DOptions({ lockTimeoutMs })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', details: { field: 'c2d.lockTimeoutMs' } }));
    }
    expect(resolveC2DOptions({ lockTimeoutMs: 300_000 })).toEqual({ lockTimeoutMs: 300_000 });
  });

  it('complete removes, reject dead-letters, abandon requeues with delivery count + 1', () => {
    send('complete-me');
    send('reject-me');
    send('abandon-me');
    const a = core.pollC2D('d')!;
    const b = core.pollC2D('d')!;
    const c = core.pollC2D('d')!;
    core.settleC2D('d', a.lockToken, 'complete');
    core.settleC2D('d', b.lockToken, 'reject');
    core.settleC2D('d', c.lockToken, 'abandon');
    expect(hubErrorOf(() => core.settleC2D('d', a.lockToken, 'complete')).errorCode).toBe(412002);
    const again = core.pollC2D('d')!;
    expect(again.body.toString()).toBe('abandon-me');
    expect(again.deliveryCount).toBe(1);
    expect(core.counters('d')).toMatchObject({ c2dCompleted: 1, c2dRejected: 1, c2dAbandoned: 1, c2dDeadLettered: 1, httpsC2DPolls: 4 });
  });

  it('dead-letters after the 10th abandon', () => {
    send('hot potato');
    for (let i = 1; i <= LIMITS.maxDeliveryCount; i++) {
      const m = core.pollC2D('d');
      expect(m?.deliveryCount).toBe(i - 1);
      core.settleC2D('d', m!.lockToken, 'abandon');
    }
    expect(core.pollC2D('d')).toBeUndefined();
    expect(core.counters('d')).toMatchObject({ c2dAbandoned: 10, c2dDeadLettered: 1 });
  });

  it('pushes to a session receiver while canDeliver() holds, and again on pumpC2D()', () => {
    const delivered: LockedC2DMessage[] = [];
    let window = 2;
    const session = core.openSession('d', 'mqtt', 'conn-1');
    send('queued-before-subscribe');
    session.setC2DReceiver({ canDeliver: () => delivered.length < window, deliver: (m) => delivered.push(m) });
    expect(delivered.map((m) => m.body.toString())).toEqual(['queued-before-subscribe']);
    send('b');
    send('c');
    expect(delivered.map((m) => m.body.toString())).toEqual(['queued-before-subscribe', 'b']);
    window = 3;
    session.pumpC2D();
    expect(delivered.map((m) => m.body.toString())).toEqual(['queued-before-subscribe', 'b', 'c']);
    expect(delivered[0]!.to).toBe('/devices/d/messages/devicebound');
    core.settleC2D('d', delivered[0]!.lockToken, 'complete');
    expect(core.stats().devices['d']?.queuedC2D).toBe(2);
  });

  it('a receiver that settles inside deliver() gets the whole queue without recursion', () => {
    for (let i = 0; i < 5; i++) send(`m${i}`);
    const seen: string[] = [];
    const session = core.openSession('d', 'amqp', 'conn-1');
    session.setC2DReceiver({
      canDeliver: () => true,
      deliver: (m) => {
        seen.push(m.body.toString());
        core.settleC2D('d', m.lockToken, 'complete');
      },
    });
    expect(seen).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(core.counters('d').c2dCompleted).toBe(5);
  });

  it('stops pushing to a closed session; the lock then expires and another session gets it', () => {
    const first: LockedC2DMessage[] = [];
    const s1 = core.openSession('d', 'amqp', 'conn-1');
    s1.setC2DReceiver({ canDeliver: () => true, deliver: (m) => first.push(m) });
    send('x');
    expect(first).toHaveLength(1);
    s1.close();
    send('y');
    expect(first).toHaveLength(1);
    const second: LockedC2DMessage[] = [];
    const s2 = core.openSession('d', 'amqp', 'conn-2');
    s2.setC2DReceiver({ canDeliver: () => true, deliver: (m) => second.push(m) });
    expect(second.map((m) => m.body.toString())).toEqual(['y']);
    // The lapse of the locks on the hub's clock redelivers, with no pump from a front-end.
    clock.advance(60_000);
    // Both locks lapsed; queue order (x was sent first) decides the redelivery order.
    expect(second.map((m) => m.body.toString())).toEqual(['y', 'x', 'y']);
    expect(second.every((m) => m.deliveryCount === 0)).toBe(true);
  });

  it('a lock timer that fires before the clock agrees waits for the clock, then redelivers', () => {
    // As the system clock can: the timer is due, but now() still reads a millisecond earlier.
    const timers = new ManualClock(Date.UTC(2026, 0, 1));
    let lag = 0;
    const lagging = { now: () => timers.now() - lag, setTimeout: timers.setTimeout.bind(timers), clearTimeout: timers.clearTimeout.bind(timers) };
    const lagged = createHubCore({ hostName: 'unit-hub.azure-devices.net', store: openHubStore({ inMemory: true }), logger: silentLogger, clock: lagging });
    try {
      lagged.createDevice('d');
      const delivered: LockedC2DMessage[] = [];
      lagged.openSession('d', 'amqp', 'conn-1').setC2DReceiver({ canDeliver: () => true, deliver: (m) => delivered.push(m) });
      lagged.sendC2D('d', { body: Buffer.from('once more') });
      expect(delivered).toHaveLength(1);
      lag = 1;
      timers.advance(60_000);
      expect(delivered).toHaveLength(1);
      timers.advance(1);
      expect(delivered.map((m) => m.body.toString())).toEqual(['once more', 'once more']);
    } finally {
      lagged.close();
    }
  });
});
