// connect()'s waitForConnection: false without sockets: the client's core over an Azure client
// link whose first connection is attempted in the background, on a ManualClock. What is checked
// is the retry schedule (the SDK reconnect back-off), the states a device team sees, that sends
// queue in the outbox meanwhile and go out in order once connected, that a failure no retry can
// cure surfaces, and that close() stops the attempts.
import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SwitchyardError } from '@switchyard/errors';
import { ManualClock } from '@switchyard/time';
import { AzureClientLink, DeviceCore, Outbox, boundedRetryPolicy, type AzureClientLike, type AzureGeneration } from '../src/internal.ts';
import { keepConnecting } from '../src/links/keep-connecting.ts';

/** An opened Azure client as far as a send needs one; it records what it was sent. */
function openedClient(sent: string[]): AzureClientLike {
  const emitter = new EventEmitter();
  return Object.assign(emitter, {
    open: () => Promise.resolve(),
    close: () => Promise.resolve(),
    sendEvent: (message: unknown, done?: (err?: Error | null) => void) => {
      sent.push(String((message as { data: unknown }).data));
      done?.(null);
    },
    setRetryPolicy: () => undefined,
  }) as unknown as AzureClientLike;
}

const offline = (): SwitchyardError => new SwitchyardError('CONNECT_FAILED', 'connect ECONNREFUSED 127.0.0.1:8883', { details: { failure: 'network' } });

/** A core over a link that is not open yet, and the attempts its first connection makes. */
function offlineDevice(clock: ManualClock, outcomes: Array<'offline' | 'auth' | 'ok'>) {
  const sent: string[] = [];
  const attempts: number[] = [];
  const link = new AzureClientLink({ protocol: 'mqtt', deviceId: 'd', azure: openedClient([]), opened: false, clock });
  return Outbox.open({}).then((outbox) => {
    const core = new DeviceCore({ link, outbox, clock, initialState: 'connecting' });
    const states: string[] = [];
    const disconnected: Array<{ willRetry: boolean; error?: SwitchyardError }> = [];
    core.on('disconnected', (event: { willRetry: boolean; error?: SwitchyardError }) => disconnected.push(event));
    core.on('state', (change: { from: string; to: string }) => states.push(states.length === 0 ? `${change.from}>${change.to}` : change.to));
    link.connectInBackground((signal): Promise<AzureGeneration> => {
      attempts.push(clock.now());
      if (signal.aborted) return Promise.reject(new SwitchyardError('ABORTED', 'aborted'));
      const outcome = outcomes.shift() ?? 'ok';
      if (outcome === 'offline') return Promise.reject(offline());
      if (outcome === 'auth') return Promise.reject(new SwitchyardError('AUTH_FAILED', 'the hub refused the credentials'));
      return Promise.resolve({ azure: openedClient(sent) });
    }, boundedRetryPolicy(Infinity));
    return { core, link, sent, attempts, states, disconnected };
  });
}

describe('the first connection in the background', () => {
  it('retries on the SDK reconnect back-off of the client clock, then sends what was queued, in order', async () => {
    const clock = new ManualClock(1_000);
    const device = await offlineDevice(clock, ['offline', 'offline', 'offline', 'offline', 'offline', 'offline', 'offline', 'offline']);
    const queued = Array.from({ length: 5 }, (_, i) => device.core.sendEvent(`m${i}`, { until: 'queued' }));
    await Promise.all(queued);
    // The back-off's waits add up to 100 + 200 + ... + 5 000 + 5 000 over the eight failures.
    await clock.advanceAsync(30_000);
    expect(device.attempts.map((at) => at - 1_000)).toEqual([0, 100, 300, 700, 1_500, 3_100, 6_300, 11_300, 16_300]);
    expect(device.states).toEqual(['connecting>reconnecting', 'connected']);
    // One report of being offline, not one per attempt.
    expect(device.disconnected).toHaveLength(1);
    expect(device.disconnected[0]).toMatchObject({ willRetry: true, error: { code: 'CONNECT_FAILED' } });
    expect(device.sent).toEqual(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(device.core.outbox!.depth).toBe(0);
    await device.core.close();
  });

  it('a send waiting for the acknowledgement is acknowledged once connected, within its deadline', async () => {
    const clock = new ManualClock();
    const device = await offlineDevice(clock, ['offline', 'offline']);
    const acked = device.core.sendEvent('late', { timeoutMs: 10_000 });
    await clock.advanceAsync(1_000);
    await expect(acked).resolves.toBeUndefined();
    expect(device.sent).toEqual(['late']);
    await device.core.close();
  });

  it('gives up on a failure no retry cures: state disconnected with the error, an error event, sends still queued', async () => {
    const clock = new ManualClock();
    const device = await offlineDevice(clock, ['offline', 'auth']);
    const errors: SwitchyardError[] = [];
    device.core.on('error', (error: SwitchyardError) => errors.push(error));
    const gaveUp = new Promise<{ error?: SwitchyardError }>((resolve) =>
      device.core.on('state', (change: { to: string; error?: SwitchyardError }) => {
        if (change.to === 'disconnected') resolve(change);
      }),
    );
    await clock.advanceAsync(60_000);
    expect((await gaveUp).error).toMatchObject({ code: 'AUTH_FAILED', retryable: false });
    expect(errors.map((e) => e.code)).toEqual(['AUTH_FAILED']);
    expect(device.attempts).toHaveLength(2);
    // Nothing is lost: the outbox still takes messages; only the hub cannot have them yet.
    await expect(device.core.sendEvent('kept', { until: 'queued' })).resolves.toBeUndefined();
    expect(device.core.outbox!.depth).toBe(1);
    expect(device.sent).toEqual([]);
    await device.core.close();
  });

  it('close() stops the attempts', async () => {
    const clock = new ManualClock();
    const device = await offlineDevice(clock, Array.from({ length: 100 }, () => 'offline' as const));
    await clock.advanceAsync(1_000);
    const made = device.attempts.length;
    await device.core.close();
    await clock.advanceAsync(60_000);
    expect(device.attempts).toHaveLength(made);
    expect(device.core.state).toBe('closed');
    expect(clock.pending()).toBe(0);
  });
});

describe('keepConnecting', () => {
  it('waits longer after THROTTLED, as the SDK reconnect policy does', async () => {
    const clock = new ManualClock();
    const at: number[] = [];
    const controller = new AbortController();
    const outcomes = [new SwitchyardError('THROTTLED', 'slow down'), offline()];
    const connected = keepConnecting({
      clock,
      signal: controller.signal,
      schedule: boundedRetryPolicy(Infinity),
      attempt: () => {
        at.push(clock.now());
        const next = outcomes.shift();
        return next === undefined ? Promise.resolve('up') : Promise.reject(next);
      },
    });
    await clock.advanceAsync(10_000);
    await expect(connected).resolves.toBe('up');
    expect(at).toEqual([0, 5_000, 5_200]);
  });
});
