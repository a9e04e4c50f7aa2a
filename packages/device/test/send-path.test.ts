// The per-send path without sockets: the shared deadline lists, and sendEvent over a stand-in for
// the Azure client (callback style, promise style, failing, never answering). Every wait here is
// for an event (a deadline expiring, a promise settling), never for a length of time.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { adaptAzureClient } from '../src/index.ts';
import { AzureClientLink, DeadlineNode, DeviceCore, clearDeadline, startDeadline } from '../src/internal.ts';

class Probe extends DeadlineNode {
  readonly expired: Promise<void>;
  fired = 0;
  #resolve!: () => void;
  constructor(readonly log: string[], readonly name: string) {
    super();
    this.expired = new Promise((resolve) => (this.#resolve = resolve));
  }
  expire(): void {
    this.fired++;
    this.log.push(this.name);
    this.#resolve();
  }
}

describe('deadline lists', () => {
  it('expire in the order they started, once each, and skip a cleared one', async () => {
    const clock = new ManualClock();
    const log: string[] = [];
    const a = new Probe(log, 'a');
    const b = new Probe(log, 'b');
    const c = new Probe(log, 'c');
    startDeadline(a, 20, clock);
    clock.advance(1);
    startDeadline(b, 20, clock);
    startDeadline(c, 20, clock);
    clearDeadline(b);
    clock.advance(19);
    expect(log).toEqual(['a']);
    clock.advance(1);
    expect(log).toEqual(['a', 'c']);
    expect([a.fired, b.fired, c.fired]).toEqual([1, 0, 1]);
    clearDeadline(a); // after expiry: harmless
    expect(a.deadlineList).toBeUndefined();
  });

  it('keep separate timeouts apart, and serve nodes added after the list emptied', async () => {
    const clock = new ManualClock();
    const log: string[] = [];
    const slow = new Probe(log, 'slow');
    const fast = new Probe(log, 'fast');
    startDeadline(slow, 60, clock);
    startDeadline(fast, 5, clock);
    clock.advance(5);
    expect(log).toEqual(['fast']);
    clock.advance(55);
    const again = new Probe(log, 'again');
    startDeadline(again, 5, clock);
    expect(clock.pending({ refed: true })).toBe(1);
    clock.advance(5);
    // An empty list leaves nothing holding the process open.
    expect(clock.pending({ refed: true })).toBe(0);
    expect(log).toEqual(['fast', 'slow', 'again']);
  });

  it('treat a delay setTimeout would refuse (NaN, 0, beyond 2^31-1 ms) as 1 ms, as setTimeout does', async () => {
    const clock = new ManualClock();
    const log: string[] = [];
    [Number.NaN, 0, 2 ** 40].forEach((ms, i) => startDeadline(new Probe(log, String(i)), ms, clock));
    clock.advance(1);
    expect(log.sort()).toEqual(['0', '1', '2']);
  });
});

type Callback = (err?: Error | null, result?: unknown) => void;

/** The send surface of an Azure client; `answer` decides what each sendEvent does. */
function standIn(answer: (done: Callback | undefined) => Promise<unknown> | void) {
  const sent: unknown[] = [];
  const callbacks: string[] = [];
  const azure = {
    sent,
    callbacks,
    sendEvent(message: unknown, done?: Callback) {
      sent.push(message);
      callbacks.push(typeof done);
      return answer(done);
    },
    on: () => azure,
    removeListener: () => azure,
    close: () => Promise.resolve(),
    setRetryPolicy: () => undefined,
  };
  return azure;
}

describe('sendEvent over a stand-in Azure client', () => {
  it('passes the SDK a callback and resolves when it is called', async () => {
    const azure = standIn((done) => void setImmediate(() => done?.(null, { type: 'MessageEnqueued' })));
    const client = adaptAzureClient(azure, { protocol: 'mqtt' });
    await client.sendEvent('hello');
    expect((azure.sent[0] as { data: Buffer }).data.toString()).toBe('hello');
    // With a callback the SDK builds no promise of its own (see core/deadlines.ts and bench/README.md).
    expect(azure.callbacks).toEqual(['function']);
  });

  it('also settles through a client-like object that ignores the callback and returns a promise', async () => {
    const client = adaptAzureClient(standIn(() => Promise.resolve('ok')), { protocol: 'amqp' });
    await expect(client.sendEvent(Buffer.from('x'))).resolves.toBeUndefined();
    const failing = adaptAzureClient(standIn(() => Promise.reject(Object.assign(new Error('no'), { name: 'UnauthorizedError' }))), { protocol: 'amqp' });
    await expect(failing.sendEvent('x')).rejects.toMatchObject({ code: 'AUTH_FAILED', details: { protocol: 'amqp', operation: 'sendEvent' } });
  });

  it('translates an SDK error, and a synchronous throw, into SwitchyardErrors', async () => {
    const throttled = adaptAzureClient(standIn((done) => done?.(Object.assign(new Error('slow down'), { name: 'ThrottlingError' }))), { protocol: 'mqtt' });
    await expect(throttled.sendEvent('x')).rejects.toMatchObject({ code: 'THROTTLED', retryable: true });
    const throwing = adaptAzureClient(
      standIn(() => {
        throw Object.assign(new Error('bad'), { name: 'ArgumentError' });
      }),
      { protocol: 'mqtt' },
    );
    await expect(throwing.sendEvent('x')).rejects.toMatchObject({ code: 'CONFIG_INVALID' });
  });

  it('rejects with TIMEOUT when the SDK never answers, and a late answer changes nothing', async () => {
    let late: Callback | undefined;
    const client = adaptAzureClient(standIn((done) => void (late = done)), { protocol: 'mqtt', operationTimeoutMs: 10_000 });
    const pending = client.sendEvent('x', { timeoutMs: 20 });
    await expect(pending).rejects.toMatchObject({ code: 'TIMEOUT', details: { protocol: 'mqtt', operation: 'sendEvent', timeoutMs: 20 } });
    expect(() => late?.(null, 'too late')).not.toThrow();
  });

  it('rejects with ABORTED when the signal fires, or was aborted before the call', async () => {
    const client = adaptAzureClient(standIn(() => undefined), { protocol: 'mqtt' });
    const controller = new AbortController();
    const pending = client.sendEvent('x', { signal: controller.signal });
    controller.abort();
    await expect(pending).rejects.toMatchObject({ code: 'ABORTED' });
    await expect(client.sendEvent('x', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'ABORTED' });
  });

  it('on AMQP, replaces the connection after a send times out', async () => {
    const states: string[] = [];
    let rebuilt = 0;
    const link = new AzureClientLink({
      protocol: 'amqp',
      deviceId: 'd',
      azure: standIn(() => undefined) as never,
      rebuild: () => {
        rebuilt++;
        // The stand-in has only what a send touches.
        return Promise.resolve({ azure: standIn((done) => done?.(null)) as never });
      },
    });
    const client = new DeviceCore({ link, initialState: 'connected' });
    client.on('state', (change: { to: string }) => states.push(change.to));
    const reconnected = new Promise<void>((resolve) => client.once('connected', resolve));
    await expect(client.sendEvent('x', { timeoutMs: 10 })).rejects.toMatchObject({ code: 'TIMEOUT', details: { delivered: 'unknown' } });
    await reconnected;
    expect(rebuilt).toBe(1);
    expect(states).toEqual(['reconnecting', 'connected']);
    // The new connection carries the next send.
    await expect(client.sendEvent('y')).resolves.toBeUndefined();
    await client.close();
  });
});
