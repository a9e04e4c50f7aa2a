// DeviceCore without sockets: a scripted link and a ManualClock. What is tested here is the core's
// own logic (states and epochs, the wait for a reconnect, deadlines and what a TIMEOUT says about
// delivery, method dispatch, close), which is the same for every real link; the behavioural suites
// run it over real links against the local hub.
import { describe, expect, it } from 'vitest';
import { ManualClock } from '@switchyard/time';
import { CONNECTION_STATES, type StateChange } from '../src/index.ts';
import { DeviceCore, canTransition, type DeviceLink, type LinkListener, type MethodResult, type OutgoingMessage } from '../src/internal.ts';

type Done = (err?: unknown) => void;

/** A link whose every send waits until the test answers it. */
class ScriptedLink implements DeviceLink {
  readonly protocol = 'amqp' as const;
  readonly deviceId = 'd1';
  readonly c2dMode = 'push' as const;
  epoch = 1;
  listener!: LinkListener;
  sends: Array<{ message: OutgoingMessage; done: Done }> = [];
  methods: string[] = [];
  closed = 0;
  timedOut: Array<[string, number]> = [];
  constructor(readonly holdsDuringReconnect: boolean) {}
  bind(listener: LinkListener): void {
    this.listener = listener;
  }
  send(message: OutgoingMessage, done: Done): void {
    this.sends.push({ message, done });
  }
  sendBatch(): Promise<void> {
    return Promise.resolve();
  }
  enableC2D(): void {}
  getTwin(): Promise<{ desired: Record<string, unknown>; reported: Record<string, unknown> }> {
    return Promise.resolve({ desired: { $version: 1 }, reported: {} });
  }
  updateReported(): Promise<void> {
    return Promise.resolve();
  }
  enableDesired(): Promise<void> {
    return Promise.resolve();
  }
  enableMethod(name: string): void {
    this.methods.push(name);
  }
  uploadToBlob(): Promise<void> {
    return Promise.resolve();
  }
  operationTimedOut(operation: string, epoch: number, _timeoutMs: number): void {
    this.timedOut.push([operation, epoch]);
  }
  close(): Promise<void> {
    this.closed++;
    return Promise.resolve();
  }
}

function core(holds = true, initialState: 'connecting' | 'connected' = 'connected') {
  const clock = new ManualClock(1_000);
  const link = new ScriptedLink(holds);
  const client = new DeviceCore({ link, clock, initialState, operationTimeoutMs: 1_000 });
  const changes: StateChange[] = [];
  client.on('state', (change: StateChange) => changes.push(change));
  return { clock, link, client, changes };
}

const flush = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

describe('the connection state machine', () => {
  it('has one vocabulary and allows no way out of closed', () => {
    expect(CONNECTION_STATES).toEqual(['connecting', 'connected', 'reconnecting', 'disconnected', 'closing', 'closed']);
    for (const to of CONNECTION_STATES) expect(canTransition('closed', to)).toBe(false);
    expect(canTransition('closing', 'connected')).toBe(false);
  });

  it('reports each transition with its reason and epoch, and says connected/disconnected as before', () => {
    const { client, link, changes } = core();
    const disconnected: Array<{ willRetry: boolean }> = [];
    client.on('disconnected', (event: { willRetry: boolean }) => disconnected.push(event));
    link.listener.linkDown(1, { willRetry: true, reason: 'link detached' });
    link.epoch = 2;
    link.listener.linkUp(2);
    expect(changes.map((c) => [c.from, c.to, c.epoch])).toEqual([
      ['connected', 'reconnecting', 1],
      ['reconnecting', 'connected', 2],
    ]);
    expect(changes[0]!.reason).toBe('link detached');
    expect(disconnected).toEqual([{ reason: 'link detached', willRetry: true }]);
  });

  it('ignores a late callback from a replaced connection', () => {
    const { client, link, changes } = core();
    link.listener.linkDown(1, { willRetry: true });
    link.listener.linkUp(2);
    // The first connection's transport finally reports its end, after the second one is up.
    link.listener.linkDown(1, { willRetry: false, error: new Error('late') });
    expect(client.state).toBe('connected');
    expect(changes.map((c) => c.to)).toEqual(['reconnecting', 'connected']);
  });

  it('a report of a newer attempt counts even before that attempt was seen up (a re-open that failed)', () => {
    const { client, link } = core();
    link.listener.linkDown(1, { willRetry: true });
    link.listener.linkDown(2, { willRetry: false, error: Object.assign(new Error('not registered'), { name: 'UnauthorizedError' }) });
    expect(client.state).toBe('disconnected');
  });
});

describe('operations while the link is re-opening', () => {
  it('send during reconnect waits for the link and goes out once it is back', async () => {
    const { client, link } = core(true);
    link.listener.linkDown(1, { willRetry: true });
    const sent = client.sendEvent('held');
    await flush();
    expect(link.sends).toHaveLength(0);
    link.listener.linkUp(2);
    expect(link.sends.map((s) => s.message)).toEqual(['held']);
    link.sends[0]!.done();
    await expect(sent).resolves.toBeUndefined();
  });

  it('a send whose deadline passes while it waits is a TIMEOUT that says it never left', async () => {
    const { client, link, clock } = core(true);
    link.listener.linkDown(1, { willRetry: true });
    const sent = client.sendEvent({ body: 'x', messageId: 'm-7' });
    clock.advance(1_000);
    await expect(sent).rejects.toMatchObject({ code: 'TIMEOUT', retryable: true, details: { delivered: 'no', messageId: 'm-7' } });
    link.listener.linkUp(2);
    expect(link.sends).toHaveLength(0);
  });

  it('a send that reached the link and got no answer is a TIMEOUT that says the hub may have it', async () => {
    const { client, link, clock } = core(true);
    const sent = client.sendEvent({ body: 'x', messageId: 'm-8' });
    expect(link.sends).toHaveLength(1);
    clock.advance(1_000);
    const err = (await sent.catch((e: unknown) => e)) as Error & { details: Record<string, unknown> };
    expect(err).toMatchObject({ code: 'TIMEOUT', details: { delivered: 'unknown', messageId: 'm-8' } });
    expect(err.message).toContain('de-duplicate on messageId m-8');
    // The link hears of it, with the epoch the send went out on (AMQP replaces a wedged link).
    expect(link.timedOut).toEqual([['sendEvent', 1]]);
  });

  it('a retryable failure during a re-open is sent again once the link is back', async () => {
    const { client, link } = core(true);
    const sent = client.sendEvent('in flight');
    link.listener.linkDown(1, { willRetry: true });
    link.sends[0]!.done(Object.assign(new Error('session lost'), { name: 'NotConnectedError' }));
    await flush();
    link.listener.linkUp(2);
    expect(link.sends.map((s) => s.message)).toEqual(['in flight', 'in flight']);
    link.sends[1]!.done();
    await expect(sent).resolves.toBeUndefined();
  });

  it('a link that queues by itself (the SDK) gets operations at once, even while re-opening', () => {
    const { client, link } = core(false);
    link.listener.linkDown(1, { willRetry: true });
    void client.sendEvent('straight through');
    expect(link.sends).toHaveLength(1);
  });

  it('when nothing re-opens the link, waiting operations go to it rather than wait out their deadline', () => {
    const { client, link } = core(true);
    link.listener.linkDown(1, { willRetry: true });
    void client.sendEvent('waiting');
    link.listener.linkDown(1, { willRetry: false });
    expect(link.sends).toHaveLength(1);
  });
});

describe('close', () => {
  it('close during open: operations waiting for the first connection are refused as never sent', async () => {
    const { client, link } = core(true, 'connecting');
    const sent = client.sendEvent('too early');
    await client.close();
    await expect(sent).rejects.toMatchObject({ code: 'NOT_CONNECTED', details: { delivered: 'no' } });
    expect(link.sends).toHaveLength(0);
    expect(link.closed).toBe(1);
    expect(client.state).toBe('closed');
  });

  it('refuses every operation after close, and a second close waits for the first', async () => {
    const { client } = core();
    const first = client.close();
    const second = client.close();
    expect(second).toBe(first);
    await first;
    await expect(client.sendEvent('x')).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
    await expect(client.getTwin()).rejects.toMatchObject({ code: 'NOT_CONNECTED' });
    expect(() => client.onMethod('m', () => ({ status: 200 }))).toThrow(/closed/);
  });

  it('abandons a link close that hangs, with a warning, on the clock', async () => {
    const { client, link, clock } = core();
    link.close = () => new Promise<void>(() => undefined);
    const warnings: string[] = [];
    client.on('warning', (w: string) => warnings.push(w));
    const closing = client.close();
    await flush();
    clock.advance(1_000);
    await closing;
    expect(client.state).toBe('closed');
    expect(warnings[0]).toMatch(/did not complete/);
  });
});

describe('method dispatch', () => {
  it('answers with the handler result, 500 when it throws, 501 when no handler is registered', async () => {
    const { client, link } = core();
    client.onMethod('ok', (req) => ({ status: 200, payload: { echo: req.payload } }));
    client.onMethod('boom', () => {
      throw new Error('broken handler');
    });
    client.onMethod('ok', (req) => ({ status: 201, payload: req.payload }));
    expect(link.methods).toEqual(['ok', 'boom']);
    const answer = (methodName: string): Promise<MethodResult> =>
      new Promise((resolve) => link.listener.linkMethod({ methodName, requestId: '1', payload: 7 }, (result) => Promise.resolve(resolve(result))));
    await expect(answer('ok')).resolves.toEqual({ status: 201, payload: 7 });
    await expect(answer('boom')).resolves.toMatchObject({ status: 500, payload: { error: expect.stringContaining('broken handler') } });
    await expect(answer('nobody')).resolves.toMatchObject({ status: 501 });
  });

  it('refuses a method without a name or handler, naming the field', () => {
    const { client } = core();
    expect(() => client.onMethod('', () => ({ status: 200 }))).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', details: { field: 'methodName' } }));
    expect(() => client.onMethod('m', undefined as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', details: { field: 'handler' } }));
  });
});
