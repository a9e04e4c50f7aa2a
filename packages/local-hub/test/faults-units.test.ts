// The fault vocabulary, the refusals, and the injector's scheduling, without sockets: a manual
// clock moves time, fake targets record what the injector asked of them.
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { FaultInjector, FaultRequestError, ManualClock, createMemoryLogger, parseFaultProperties, type FaultEvent, type FaultTarget, type KillFault, type TelemetryRecord } from '../src/internal.ts';
import { windowFaultError } from '../src/faults/errors.ts';
import { delayWrites } from '../src/faults/targets.ts';
import { within } from './support/faults.ts';

const props = (type: string, extra: Record<string, string> = {}): Record<string, string> => ({ AzIoTHub_FaultOperationType: type, ...extra });

describe('parseFaultProperties', () => {
  it('ignores ordinary telemetry', () => {
    expect(parseFaultProperties({ unit: 'celsius' })).toEqual({ kind: 'none' });
  });

  it('reads type, reason, delay and duration; kill faults act once', () => {
    expect(parseFaultProperties(props('KillTcp', { AzIoTHub_FaultOperationCloseReason: ' boom ', AzIoTHub_FaultOperationDelayInSecs: '2', AzIoTHub_FaultOperationDurationInSecs: '9' }))).toEqual({
      kind: 'fault',
      request: { type: 'KillTcp', closeReason: 'boom', delaySeconds: 2, durationSeconds: 0 },
    });
  });

  it('gives window faults the Azure suites\' 5 s when no duration is sent', () => {
    const parsed = parseFaultProperties(props('InvokeThrottling'));
    expect(parsed.kind === 'fault' && parsed.request).toMatchObject({ delaySeconds: 0, durationSeconds: 5 });
    const explicit = parseFaultProperties(props('InvokeAuthError', { AzIoTHub_FaultOperationDurationInSecs: '0.5' }));
    expect(explicit.kind === 'fault' && explicit.request.durationSeconds).toBe(0.5);
  });

  it('matches property names regardless of case (HTTPS headers arrive lower-cased)', () => {
    const parsed = parseFaultProperties({ azioThub_faultoperationtype: 'ShutDownMqtt', azIoTHub_faultOperationDelayInSecs: '1' });
    expect(parsed.kind === 'fault' && parsed.request).toMatchObject({ type: 'ShutDownMqtt', delaySeconds: 1 });
  });

  it.each([
    [props('KillEverything'), /unknown AzIoTHub_FaultOperationType "KillEverything"/],
    [props('KillTcp', { AzIoTHub_FaultOperationDelayInSecs: '-1' }), /DelayInSecs must be a number of seconds >= 0/],
    [props('KillTcp', { AzIoTHub_FaultOperationDelayInSecs: 'soon' }), /DelayInSecs must be a number/],
    [props('InvokeThrottling', { AzIoTHub_FaultOperationDurationInSecs: '86400' }), /DurationInSecs must be at most 3600/],
  ])('refuses %j', (input, why) => {
    const parsed = parseFaultProperties(input);
    expect(parsed.kind).toBe('invalid');
    expect(parsed.kind === 'invalid' && parsed.why).toMatch(why);
  });
});

describe('window fault refusals', () => {
  it.each([
    ['InvokeThrottling', 429, 429001, 'com.microsoft:device-container-throttled', 'Throttled'],
    ['InvokeMaxMessageQuota', 403, 403002, 'amqp:resource-limit-exceeded', 'IotHubQuotaExceeded'],
    ['InvokeAuthError', 401, 401003, 'amqp:unauthorized-access', 'Unauthorized'],
    ['InvokeServiceUnavailable', 503, 503000, 'com.microsoft:timeout', 'ServiceUnavailable'],
  ] as const)('%s answers HTTP %d, IoT Hub code %d, AMQP %s', (type, httpStatus, errorCode, amqpCondition, name) => {
    const error = windowFaultError(type, Date.UTC(2030, 0, 1));
    expect({ httpStatus: error.httpStatus, errorCode: error.errorCode, amqpCondition: error.amqpCondition }).toEqual({ httpStatus, errorCode, amqpCondition });
    expect(error.toBody()).toMatchObject({ Message: expect.stringMatching(new RegExp(`^ErrorCode:${name};`)), errorCode });
    expect(error.message).toContain('2030-01-01T00:00:00.000Z');
  });
});

class FakeTarget implements FaultTarget {
  readonly killed: Array<{ type: KillFault; reason: string }> = [];
  readonly socket = undefined;
  constructor(readonly connectionId: string, private readonly devices: string[], readonly protocol: FaultTarget['protocol'] = 'amqp') {}
  deviceIds(): readonly string[] {
    return this.devices;
  }
  kill(type: KillFault, _deviceId: string, reason: string): string | undefined {
    if (type === 'ShutDownMqtt') return undefined;
    this.killed.push({ type, reason });
    return `${type} done`;
  }
}

function injector(): { faults: FaultInjector; clock: ManualClock; events: FaultEvent[] } {
  const clock = new ManualClock(Date.UTC(2030, 0, 1));
  const faults = new FaultInjector({ clock, logger: createMemoryLogger() });
  const events: FaultEvent[] = [];
  faults.on('fault', (e) => events.push(e));
  return { faults, clock, events };
}

function record(deviceId: string, properties: Record<string, string>): TelemetryRecord {
  return { deviceId, protocol: 'amqp', body: Buffer.alloc(0), properties, systemProperties: {}, receivedAt: '', sequenceNumber: 1 };
}

function next(faults: FaultInjector, phase: FaultEvent['phase']): Promise<FaultEvent> {
  return within(new Promise((resolve) => {
    const listener = (e: FaultEvent): void => {
      if (e.phase !== phase) return;
      faults.off('fault', listener);
      resolve(e);
    };
    faults.on('fault', listener);
  }), 5000, phase);
}

describe('FaultInjector', () => {
  it('cuts only the faulted device\'s connections, once the hub clock reaches the delay', async () => {
    const { faults, clock } = injector();
    const mine = new FakeTarget('c1', ['d1', 'd2']);
    const other = new FakeTarget('c2', ['d3']);
    faults.register(mine);
    faults.register(other);
    const scheduled = next(faults, 'scheduled');
    faults.telemetryAccepted(record('d1', props('KillAmqpSession', { AzIoTHub_FaultOperationDelayInSecs: '10', AzIoTHub_FaultOperationCloseReason: 'bye' })));
    expect((await scheduled).detail).toBe('KillAmqpSession in 10 s');
    // One millisecond short of the delay on the hub clock: nothing is cut.
    await clock.advanceAsync(9_999);
    expect(mine.killed).toEqual([]);
    const started = next(faults, 'started');
    clock.advance(1);
    expect(await started).toMatchObject({ deviceId: 'd1', fault: 'KillAmqpSession', connectionIds: ['c1'], detail: 'KillAmqpSession done' });
    expect(mine.killed).toEqual([{ type: 'KillAmqpSession', reason: 'bye' }]);
    expect(other.killed).toEqual([]);
    faults.close();
  });

  it('reports a fault with nothing to act on as ignored', async () => {
    const { faults } = injector();
    faults.register(new FakeTarget('c1', ['d1']));
    const ignored = next(faults, 'ignored');
    faults.inject('d1', { type: 'ShutDownMqtt', closeReason: '', delaySeconds: 0, durationSeconds: 0 });
    expect((await ignored).detail).toMatch(/no connection of 'd1' that ShutDownMqtt applies to/);
    faults.close();
  });

  it('forgets an unregistered target', async () => {
    const { faults } = injector();
    const target = new FakeTarget('c1', ['d1']);
    const forget = faults.register(target);
    forget();
    const ignored = next(faults, 'ignored');
    faults.inject('d1', { type: 'KillTcp', closeReason: '', delaySeconds: 0, durationSeconds: 0 });
    await ignored;
    expect(target.killed).toEqual([]);
    faults.close();
  });

  it('refuses telemetry from the window\'s start to its end on the hub clock, for that device only', () => {
    const { faults, clock } = injector();
    faults.inject('d1', { type: 'InvokeMaxMessageQuota', closeReason: '', delaySeconds: 2, durationSeconds: 3 });
    expect(() => faults.admitTelemetry('d1', 'mqtt')).not.toThrow();
    clock.advance(2_000);
    expect(() => faults.admitTelemetry('d1', 'mqtt')).toThrow(/quota/);
    expect(() => faults.admitTelemetry('d2', 'mqtt')).not.toThrow();
    expect(faults.active('d1')).toEqual([{ deviceId: 'd1', fault: 'InvokeMaxMessageQuota', startsAt: clock.now(), endsAt: clock.now() + 3_000 }]);
    clock.advance(3_000);
    expect(() => faults.admitTelemetry('d1', 'mqtt')).not.toThrow();
    expect(faults.active()).toEqual([]);
    faults.close();
  });

  it('refuse and throttle-https hold for their window; clear ends them early', async () => {
    const { faults, clock } = injector();
    faults.network('d1', { kind: 'refuse', seconds: 5 });
    faults.network('d1', { kind: 'throttle-https', seconds: 5 });
    expect(faults.admitConnection('d1', 'mqtt', 'x')).toBe(false);
    expect(faults.admitConnection('d2', 'mqtt', 'y')).toBe(true);
    expect(() => faults.admitHttpsRequest('d1')).toThrow(expect.objectContaining({ httpStatus: 429, errorCode: 429001 }));
    const ended = next(faults, 'ended');
    expect(faults.clear('d1')).toBe(2);
    expect((await ended).detail).toBe('cleared');
    expect(faults.admitConnection('d1', 'mqtt', 'x')).toBe(true);
    expect(() => faults.admitHttpsRequest('d1')).not.toThrow();
    faults.network('d1', { kind: 'refuse', seconds: 5 });
    clock.advance(5_000);
    expect(faults.admitConnection('d1', 'mqtt', 'x')).toBe(true);
    faults.close();
  });

  it('a blackhole with no connection to act on is ignored and leaves no window', () => {
    const { faults } = injector();
    expect(faults.network('d1', { kind: 'blackhole', seconds: 5 })).toMatchObject({ phase: 'ignored', connectionIds: [] });
    expect(faults.active()).toEqual([]);
    faults.close();
  });

  it.each([
    [{ kind: 'blackhole' }, /seconds must be > 0/],
    [{ kind: 'refuse', seconds: 4000 }, /seconds must be > 0 and <= 3600/],
    [{ kind: 'delay', seconds: 1 }, /delayMs must be an integer/],
    [{ kind: 'delay', seconds: 1, delayMs: 1.5 }, /delayMs must be an integer/],
    [{ kind: 'teleport', seconds: 1 }, /kind must be one of/],
  ])('refuses the network fault %j', (request, why) => {
    const { faults } = injector();
    expect(() => faults.network('d1', request as Parameters<FaultInjector['network']>[1])).toThrow(FaultRequestError);
    expect(() => faults.network('d1', request as Parameters<FaultInjector['network']>[1])).toThrow(why);
    faults.close();
  });

  it('does nothing once closed', async () => {
    const { faults, clock, events } = injector();
    const target = new FakeTarget('c1', ['d1']);
    faults.close();
    faults.register(target);
    faults.inject('d1', { type: 'KillTcp', closeReason: '', delaySeconds: 0, durationSeconds: 0 });
    faults.inject('d1', { type: 'KillTcp', closeReason: '', delaySeconds: 1, durationSeconds: 0 });
    // Past both the immediate and the delayed one, with promise turns between the timers.
    await clock.advanceAsync(1_000);
    expect(target.killed).toEqual([]);
    expect(events).toEqual([]);
  });
});

/** Socket.prototype.write stands behind delayWrites' own-property patch, as on a real socket. */
class FakeSocket extends EventEmitter {
  readonly written: string[] = [];
  destroyed = false;
  write(chunk: unknown): boolean {
    this.written.push(String(chunk));
    return true;
  }
}

describe('delayWrites', () => {
  it('holds writes while active, keeps their order while draining, then writes straight through', async () => {
    const socket = new FakeSocket();
    const end = delayWrites(socket as unknown as Socket, 50);
    socket.write('a');
    socket.write('b');
    expect(socket.written).toEqual([]);
    end();
    // Written after the window but before the held ones drained: it must not overtake them.
    socket.write('c');
    expect(socket.written).toEqual([]);
    await within((async () => { while (socket.written.length < 3) await new Promise((r) => setTimeout(r, 10)); })(), 5000, 'drain');
    expect(socket.written).toEqual(['a', 'b', 'c']);
    expect(Object.hasOwn(socket, 'write')).toBe(false);
    socket.write('d');
    expect(socket.written).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('FaultInjector on accepted telemetry', () => {
  it('names an unknown type "invalid" and a known one with bad timing by its type', () => {
    const { faults, events } = injector();
    faults.telemetryAccepted(record('d1', props('KillEverything')));
    faults.telemetryAccepted(record('d1', props('KillTcp', { AzIoTHub_FaultOperationDelayInSecs: 'x' })));
    faults.telemetryAccepted(record('d1', { unrelated: 'yes' }));
    expect(events.map((e) => [e.fault, e.phase])).toEqual([['invalid', 'ignored'], ['KillTcp', 'ignored']]);
    faults.close();
  });
});
