// Fault injection for the local hub: IoT Hub's telemetry-triggered faults (AzIoTHub_Fault*) and
// the network faults the service API adds. One injector per hub; front-ends register their live
// connections with it and ask it before admitting a device, the core asks it before accepting
// telemetry. Delays and windows run on the hub's clock, so a test's ManualClock opens and closes them.
import type { Clock, TimerHandle } from '@switchyard/time';
import { TypedEmitter } from '../core/events.ts';
import { HubError } from '../core/errors.ts';
import { HubTimers } from '../core/timers.ts';
import type { DeviceProtocol, HubLogger, TelemetryRecord } from '../core/types.ts';
import { windowFaultError } from './errors.ts';
import { blackHole, delayWrites, resetSocket, type FaultTarget } from './targets.ts';
import { DEFAULT_WINDOW_SECONDS, KILL_FAULTS, MAX_FAULT_SECONDS, WINDOW_FAULTS, isKillFault, parseFaultProperties, type FaultType, type KillFault, type WindowFault } from './vocabulary.ts';

export const NETWORK_FAULTS = ['blackhole', 'delay', 'reset', 'refuse', 'throttle-https'] as const;
export type NetworkFaultKind = (typeof NETWORK_FAULTS)[number];

export interface NetworkFaultRequest {
  kind: NetworkFaultKind;
  /** How long the fault lasts (not for `reset`, which acts once). */
  seconds?: number;
  /** For `delay`: how long each write to the device is held. */
  delayMs?: number;
}

/** One of IoT Hub's faults, as the AzIoTHub_Fault* properties request it. */
export interface FaultInjection {
  type: FaultType;
  /** Default 0. */
  delaySeconds?: number;
  /** Window faults only; default 5 s. Kill faults act once. */
  durationSeconds?: number;
  /** Carried into the AMQP error description; default "fault injected: <type>". */
  closeReason?: string;
}

/** What the hub handle (`hub.faults`) offers; the front-ends' side of the injector stays internal. */
export interface FaultControl {
  inject(deviceId: string, request: FaultInjection): FaultEvent;
  network(deviceId: string, request: NetworkFaultRequest): FaultEvent;
  active(deviceId?: string): ActiveFault[];
  clear(deviceId?: string): number;
  on(event: 'fault', listener: (event: FaultEvent) => void): this;
  once(event: 'fault', listener: (event: FaultEvent) => void): this;
  off(event: 'fault', listener: (event: FaultEvent) => void): this;
}

export interface FaultEvent {
  deviceId: string;
  /** `invalid`: a fault-carrying message whose type is not one of IoT Hub's. */
  fault: FaultType | NetworkFaultKind | 'invalid';
  /** scheduled: accepted, waiting for its delay; started: in effect (kill faults: applied); ended: window over; ignored: nothing to act on. */
  phase: 'scheduled' | 'started' | 'ended' | 'ignored';
  /** What was cut or refused, in words, for logs and test failure messages. */
  detail: string;
  /** Connections the fault acted on. */
  connectionIds: string[];
}

export interface ActiveFault {
  deviceId: string;
  fault: FaultType | NetworkFaultKind;
  /** Epoch ms on the hub's clock. */
  startsAt: number;
  endsAt: number;
}

interface Window extends ActiveFault {
  /** Undoes socket-level effects when the window ends. */
  undo: Array<() => void>;
  /** Cancels the end of the window. */
  cancel: (() => void) | undefined;
  ended: boolean;
}

/** Network faults last at most an hour, as the telemetry-triggered ones do. */
const MAX_NETWORK_SECONDS = 3600;

export interface FaultInjectorOptions {
  clock: Clock;
  logger: HubLogger;
}

/** Thrown for a service-API fault request that cannot be honoured; the REST layer answers 400. */
export class FaultRequestError extends HubError {
  constructor(message: string) {
    super('ArgumentInvalid', message);
  }
}

export class FaultInjector extends TypedEmitter<{ fault: [event: FaultEvent] }> implements FaultControl {
  readonly #clock: Clock;
  readonly #timers: HubTimers;
  readonly #logger: HubLogger;
  readonly #targets = new Set<FaultTarget>();
  readonly #windows = new Set<Window>();
  readonly #immediates = new Set<NodeJS.Immediate>();
  #closed = false;

  constructor(options: FaultInjectorOptions) {
    super();
    this.#clock = options.clock;
    this.#timers = new HubTimers(options.clock);
    this.#logger = options.logger;
  }

  // ─────────────────────── asked by the core and front-ends ───────────────────────

  /** Throws the HubError the device's telemetry is refused with while a window fault is open. */
  admitTelemetry(deviceId: string, _protocol: DeviceProtocol): void {
    const now = this.#clock.now();
    for (const w of this.#windows) {
      if (w.deviceId === deviceId && !w.ended && w.startsAt <= now && now < w.endsAt && isWindowFault(w.fault)) {
        throw windowFaultError(w.fault, w.endsAt);
      }
    }
  }

  /** Every accepted message passes here; one that names a fault schedules it. The message itself stays accepted, as in IoT Hub. */
  telemetryAccepted(record: TelemetryRecord): void {
    const parsed = parseFaultProperties(record.properties);
    if (parsed.kind === 'none') return;
    if (parsed.kind === 'invalid') {
      this.#logger.warn('fault request ignored', { deviceId: record.deviceId, why: parsed.why });
      this.#emit({ deviceId: record.deviceId, fault: parsed.type ?? 'invalid', phase: 'ignored', detail: parsed.why, connectionIds: [] }, false);
      return;
    }
    this.inject(record.deviceId, parsed.request);
  }

  /** False while a `refuse` fault is open for the device: its new connection is to be cut at once. */
  admitConnection(deviceId: string, protocol: DeviceProtocol, connectionId: string): boolean {
    const open = this.#openWindow(deviceId, 'refuse');
    if (!open) return true;
    this.#logger.info('connection refused by an injected fault', { deviceId, protocol, connectionId });
    this.#emit({ deviceId, fault: 'refuse', phase: 'started', detail: `refused new ${protocol} connection ${connectionId}`, connectionIds: [connectionId] }, false);
    return false;
  }

  /** Throws 429 (ThrottlingException) for a device's HTTPS request while `throttle-https` is open. */
  admitHttpsRequest(deviceId: string): void {
    const open = this.#openWindow(deviceId, 'throttle-https');
    if (open) throw new HubError('Throttled', `Requests of device '${deviceId}' are throttled (fault injected until ${new Date(open.endsAt).toISOString()}).`);
  }

  /** A front-end's live connection; the returned function forgets it. */
  register(target: FaultTarget): () => void {
    if (this.#closed) return () => undefined;
    this.#targets.add(target);
    return () => {
      this.#targets.delete(target);
    };
  }

  // ─────────────────────────── asked by the service side ───────────────────────────

  /** Schedules an IoT Hub fault for a device, as a fault-carrying telemetry message does. */
  inject(deviceId: string, input: FaultInjection): FaultEvent {
    const request = normalizeInjection(input);
    const now = this.#clock.now();
    const startsAt = now + request.delaySeconds * 1000;
    const reason = request.closeReason || `fault injected: ${request.type}`;
    if (isKillFault(request.type)) {
      const type = request.type;
      const event: FaultEvent = { deviceId, fault: type, phase: 'scheduled', detail: `${type} in ${request.delaySeconds} s`, connectionIds: [] };
      this.#emit(event, true);
      this.#at(startsAt, () => this.#kill(deviceId, type, reason));
      return event;
    }
    const window = this.#openNew(deviceId, request.type, startsAt, startsAt + request.durationSeconds * 1000);
    const event: FaultEvent = { deviceId, fault: request.type, phase: 'scheduled', detail: `${request.type} from ${new Date(window.startsAt).toISOString()} for ${request.durationSeconds} s`, connectionIds: [] };
    this.#emit(event, true);
    if (request.delaySeconds === 0) this.#emit({ ...event, phase: 'started', detail: `${request.type} for ${request.durationSeconds} s` }, true);
    else this.#at(startsAt, () => this.#emit({ ...event, phase: 'started', detail: `${request.type} for ${request.durationSeconds} s` }, true));
    return event;
  }

  /** A network fault on the device's connections (or, for `refuse` and `throttle-https`, on its next ones). */
  network(deviceId: string, request: NetworkFaultRequest): FaultEvent {
    if (!(NETWORK_FAULTS as readonly string[]).includes(request.kind)) throw new FaultRequestError(`kind must be one of ${NETWORK_FAULTS.join(', ')}`);
    const seconds = request.seconds ?? 0;
    if (request.kind !== 'reset' && !(seconds > 0 && seconds <= MAX_NETWORK_SECONDS)) {
      throw new FaultRequestError(`seconds must be > 0 and <= ${MAX_NETWORK_SECONDS} for ${request.kind}`);
    }
    const targets = this.#targetsOf(deviceId);
    const ids = targets.map((t) => t.connectionId);
    const now = this.#clock.now();
    switch (request.kind) {
      case 'reset': {
        for (const t of targets) {
          if (t.socket) resetSocket(t.socket);
          else t.kill('KillTcp', deviceId, 'connection reset (injected)');
        }
        return this.#emit({ deviceId, fault: 'reset', phase: targets.length > 0 ? 'started' : 'ignored', detail: `reset ${ids.length} connection(s)`, connectionIds: ids }, true);
      }
      case 'blackhole':
      case 'delay': {
        const delayMs = request.delayMs ?? 0;
        if (request.kind === 'delay' && !(Number.isInteger(delayMs) && delayMs > 0 && delayMs <= 60_000)) {
          throw new FaultRequestError('delayMs must be an integer from 1 to 60000 for delay');
        }
        const sockets = targets.flatMap((t) => (t.socket && !t.socket.destroyed ? [t.socket] : []));
        const undo = sockets.map((s) => (request.kind === 'blackhole' ? blackHole(s) : delayWrites(s, delayMs)));
        // Only the connections open now are affected, so with none there is no window to list.
        if (sockets.length > 0) this.#openNew(deviceId, request.kind, now, now + seconds * 1000, undo);
        const what = request.kind === 'blackhole' ? 'no traffic' : `writes held ${delayMs} ms`;
        return this.#emit({ deviceId, fault: request.kind, phase: sockets.length > 0 ? 'started' : 'ignored', detail: `${what} on ${sockets.length} connection(s) for ${seconds} s`, connectionIds: ids }, true);
      }
      case 'refuse':
      case 'throttle-https': {
        this.#openNew(deviceId, request.kind, now, now + seconds * 1000);
        const what = request.kind === 'refuse' ? 'new connections refused' : 'HTTPS requests answered 429';
        return this.#emit({ deviceId, fault: request.kind, phase: 'started', detail: `${what} for ${seconds} s`, connectionIds: [] }, true);
      }
    }
  }

  /** Faults scheduled or in effect, oldest first. */
  active(deviceId?: string): ActiveFault[] {
    const now = this.#clock.now();
    return [...this.#windows]
      .filter((w) => !w.ended && w.endsAt > now && (deviceId === undefined || w.deviceId === deviceId))
      .map(({ deviceId: d, fault, startsAt, endsAt }) => ({ deviceId: d, fault, startsAt, endsAt }));
  }

  /** Ends the device's windows (or every device's) at once; pending kill faults still fire. Returns how many ended. */
  clear(deviceId?: string): number {
    let n = 0;
    for (const w of [...this.#windows]) {
      if (deviceId !== undefined && w.deviceId !== deviceId) continue;
      this.#end(w, 'cleared');
      n++;
    }
    return n;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of [...this.#windows]) this.#end(w, 'hub closing', false);
    this.#timers.clearAll();
    for (const immediate of this.#immediates) clearImmediate(immediate);
    this.#immediates.clear();
    this.#targets.clear();
    this.removeAllListeners();
  }

  // ──────────────────────────────────── internals ───────────────────────────────────

  #kill(deviceId: string, type: KillFault, reason: string): void {
    const acted: string[] = [];
    const details: string[] = [];
    for (const target of this.#targetsOf(deviceId)) {
      let detail: string | undefined;
      try {
        detail = target.kill(type, deviceId, reason);
      } catch (error) {
        this.#logger.warn('fault target threw', { deviceId, fault: type, connectionId: target.connectionId, error: String(error) });
      }
      if (detail !== undefined) {
        acted.push(target.connectionId);
        details.push(detail);
      }
    }
    const phase = acted.length > 0 ? 'started' : 'ignored';
    this.#emit({ deviceId, fault: type, phase, detail: details.join('; ') || `no connection of '${deviceId}' that ${type} applies to`, connectionIds: acted }, true);
  }

  #targetsOf(deviceId: string): FaultTarget[] {
    return [...this.#targets].filter((t) => t.deviceIds().includes(deviceId));
  }

  #openWindow(deviceId: string, fault: Window['fault']): Window | undefined {
    const now = this.#clock.now();
    for (const w of this.#windows) if (w.deviceId === deviceId && w.fault === fault && !w.ended && w.startsAt <= now && now < w.endsAt) return w;
    return undefined;
  }

  #openNew(deviceId: string, fault: Window['fault'], startsAt: number, endsAt: number, undo: Array<() => void> = []): Window {
    const window: Window = { deviceId, fault, startsAt, endsAt, undo, cancel: undefined, ended: false };
    this.#windows.add(window);
    window.cancel = this.#at(endsAt, () => {
      window.cancel = undefined;
      this.#end(window, 'elapsed');
    });
    return window;
  }

  #end(window: Window, why: string, announce = true): void {
    if (window.ended) return;
    window.ended = true;
    window.cancel?.();
    window.cancel = undefined;
    this.#windows.delete(window);
    for (const undo of window.undo) {
      try {
        undo();
      } catch (error) {
        this.#logger.warn('fault undo threw', { deviceId: window.deviceId, fault: window.fault, error: String(error) });
      }
    }
    if (announce) this.#emit({ deviceId: window.deviceId, fault: window.fault, phase: 'ended', detail: why, connectionIds: [] }, true);
  }

  /** Runs `fn` once the hub's clock reaches `at`; returns what cancels it. */
  #at(at: number, fn: () => void): () => void {
    const left = at - this.#clock.now();
    if (left > 0) {
      let timer: TimerHandle;
      const check = (): void => {
        if (this.#closed) return;
        const rest = at - this.#clock.now();
        // A system timer may fire a millisecond before Date.now() agrees, so the clock decides.
        if (rest > 0) timer = this.#timers.schedule(rest, check);
        else fn();
      };
      timer = this.#timers.schedule(left, check);
      return () => this.#timers.clear(timer);
    }
    // Due already: still wait a turn (not time), so the fault-carrying message is acknowledged
    // before the cut, whatever clock the hub runs on.
    const immediate = setImmediate(() => {
      this.#immediates.delete(immediate);
      if (!this.#closed) fn();
    });
    this.#immediates.add(immediate);
    return () => {
      clearImmediate(immediate);
      this.#immediates.delete(immediate);
    };
  }

  #emit(event: FaultEvent, log: boolean): FaultEvent {
    if (log) this.#logger.info(`fault ${event.phase}`, { ...event });
    try {
      this.emit('fault', event);
    } catch (error) {
      this.#logger.warn("'fault' listener threw", { error: String(error) });
    }
    return event;
  }
}

function isWindowFault(fault: Window['fault']): fault is WindowFault {
  return fault === 'InvokeThrottling' || fault === 'InvokeMaxMessageQuota' || fault === 'InvokeAuthError' || fault === 'InvokeServiceUnavailable';
}

function normalizeInjection(input: FaultInjection): Required<FaultInjection> {
  if (![...KILL_FAULTS, ...WINDOW_FAULTS].includes(input.type as never)) throw new FaultRequestError(`type must be one of ${[...KILL_FAULTS, ...WINDOW_FAULTS].join(', ')}`);
  const bounded = (value: number | undefined, fallback: number, name: string): number => {
    const n = value ?? fallback;
    if (!(typeof n === 'number' && n >= 0 && n <= MAX_FAULT_SECONDS)) throw new FaultRequestError(`${name} must be from 0 to ${MAX_FAULT_SECONDS}`);
    return n;
  };
  const delaySeconds = bounded(input.delaySeconds, 0, 'delaySeconds');
  const durationSeconds = isKillFault(input.type) ? 0 : bounded(input.durationSeconds, DEFAULT_WINDOW_SECONDS, 'durationSeconds');
  return { type: input.type, delaySeconds, durationSeconds, closeReason: input.closeReason ?? '' };
}
