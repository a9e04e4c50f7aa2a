import { EventEmitter } from 'node:events';
import type { DeviceProtocol, TelemetryRecord } from './types.ts';

export interface SessionInfo {
  deviceId: string;
  /** Set for a module identity's session, which is apart from its device's. */
  moduleId?: string;
  protocol: DeviceProtocol;
  connectionId: string;
}

/** Events of the core, re-emitted by the LocalHub handle. */
export interface HubEvents {
  telemetry: [record: TelemetryRecord];
  connected: [session: SessionInfo];
  disconnected: [session: SessionInfo & { reason: string }];
  /** A refused operation (auth failure, foreign topic, over-limit message…), also written to the logger. */
  refused: [event: { deviceId?: string; moduleId?: string; protocol?: DeviceProtocol; connectionId?: string; what: string; why: string }];
  /** A C2D message left its queue: completed, rejected, expired, abandoned too often, or purged with its device. */
  c2dSettled: [event: C2DSettledEvent];
}

export type C2DOutcome = 'completed' | 'rejected' | 'expired' | 'deliveryCountExceeded' | 'purged';

export interface C2DSettledEvent {
  deviceId: string;
  deviceGenerationId: string;
  messageId: string;
  ack: 'none' | 'positive' | 'negative' | 'full' | undefined;
  outcome: C2DOutcome;
  /** Epoch ms of the outcome. */
  at: number;
}

/** EventEmitter with the event names and argument tuples checked at compile time. */
export class TypedEmitter<E extends { [K in keyof E]: unknown[] }> {
  readonly #emitter = new EventEmitter();
  constructor() {
    // Tests and gateways attach one listener per device; the default of 10 would warn spuriously.
    this.#emitter.setMaxListeners(0);
  }
  on<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.on(event, listener as (...args: unknown[]) => void);
    return this;
  }
  once<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.once(event, listener as (...args: unknown[]) => void);
    return this;
  }
  off<K extends keyof E & string>(event: K, listener: (...args: E[K]) => void): this {
    this.#emitter.off(event, listener as (...args: unknown[]) => void);
    return this;
  }
  protected emit<K extends keyof E & string>(event: K, ...args: E[K]): void {
    this.#emitter.emit(event, ...args);
  }
  protected removeAllListeners(): void {
    this.#emitter.removeAllListeners();
  }
}
