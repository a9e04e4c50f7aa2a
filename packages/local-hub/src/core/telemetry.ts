// Device-to-cloud telemetry: the size rule, the fault gate, and a bounded in-memory log of what
// was accepted, which tests and the typed handle read back.
import type { Clock } from '@switchyard/time';
import type { CounterTable } from './counters.ts';
import { HubError } from './errors.ts';
import { LIMITS } from './iothub-limits.ts';
import { reportedIdentity, type IdentityLookup } from './identity.ts';
import type { DeviceProtocol, HubLogger, TelemetryFilter, TelemetryInput, TelemetryRecord } from './types.ts';

/** What the core asks of a fault injector: whether to refuse telemetry, and what was accepted. */
export interface TelemetryFaultGate {
  /** Throws the HubError to refuse the device's telemetry with while a fault window is open. */
  admitTelemetry(deviceId: string, protocol: DeviceProtocol): void;
  /** Sees every accepted message; one carrying AzIoTHub_Fault* properties schedules its fault. */
  telemetryAccepted(record: TelemetryRecord): void;
}

export interface TelemetryLogOptions {
  /** Devices and modules: a module's telemetry carries its module id. */
  registry: IdentityLookup;
  counters: CounterTable;
  logger: HubLogger;
  clock: Clock;
  /** How many records to keep. */
  capacity: number;
  faults: TelemetryFaultGate | undefined;
  logRefusal(event: { deviceId: string; protocol: DeviceProtocol; what: string; why: string }): void;
  /** Every accepted record, after the listeners. */
  accepted(record: TelemetryRecord): void;
}

export class TelemetryLog {
  readonly #o: TelemetryLogOptions;
  readonly #records: TelemetryRecord[] = [];
  readonly #listeners = new Set<(record: TelemetryRecord) => void>();
  #sequence = 0;

  constructor(options: TelemetryLogOptions) {
    this.#o = options;
  }

  accept(deviceId: string, protocol: DeviceProtocol, message: TelemetryInput): TelemetryRecord {
    const { logRefusal, faults, logger } = this.#o;
    this.#o.registry.require(deviceId);
    let size = message.body.length;
    for (const [k, v] of Object.entries(message.properties)) size += Buffer.byteLength(k) + Buffer.byteLength(v);
    for (const v of Object.values(message.systemProperties)) if (typeof v === 'string') size += Buffer.byteLength(v);
    if (size > LIMITS.telemetryBytes) {
      logRefusal({ deviceId, protocol, what: 'telemetry', why: `message of ${size} bytes exceeds ${LIMITS.telemetryBytes}` });
      throw new HubError('MessageTooLarge', `Telemetry of ${size} bytes (body and properties) exceeds IoT Hub's limit of ${LIMITS.telemetryBytes} bytes.`);
    }
    try {
      faults?.admitTelemetry(deviceId, protocol);
    } catch (error) {
      logRefusal({ deviceId, protocol, what: 'telemetry', why: error instanceof Error ? error.message : String(error) });
      throw error;
    }
    const record: TelemetryRecord = {
      ...reportedIdentity(deviceId),
      protocol,
      body: message.body,
      properties: { ...message.properties },
      systemProperties: { ...message.systemProperties },
      receivedAt: new Date(this.#o.clock.now()).toISOString(),
      sequenceNumber: ++this.#sequence,
    };
    this.#records.push(record);
    // Trim in chunks so the ring costs O(1) amortized instead of a shift per message.
    if (this.#records.length > this.#o.capacity + 1024) this.#records.splice(0, this.#records.length - this.#o.capacity);
    this.#o.counters.of(deviceId).telemetryReceived++;
    for (const listener of this.#listeners) {
      try {
        listener(record);
      } catch (error) {
        logger.warn('telemetry listener threw', { error: String(error) });
      }
    }
    this.#o.accepted(record);
    try {
      faults?.telemetryAccepted(record);
    } catch (error) {
      logger.warn('fault injector threw on accepted telemetry', { deviceId, error: String(error) });
    }
    return record;
  }

  /** Received telemetry, oldest first; `afterSequence` skips what a reader has already seen. */
  list(filter: TelemetryFilter = {}): TelemetryRecord[] {
    const start = Math.max(0, this.#records.length - this.#o.capacity);
    const out: TelemetryRecord[] = [];
    for (let i = start; i < this.#records.length; i++) {
      const record = this.#records[i]!;
      if (filter.afterSequence !== undefined && record.sequenceNumber <= filter.afterSequence) continue;
      if (filter.deviceId !== undefined && record.deviceId !== filter.deviceId) continue;
      if (filter.moduleId !== undefined && record.moduleId !== filter.moduleId) continue;
      out.push(record);
    }
    return out;
  }

  onRecord(listener: (record: TelemetryRecord) => void): () => void {
    this.#listeners.add(listener);
    return () => { this.#listeners.delete(listener); };
  }

  close(): void {
    this.#listeners.clear();
  }
}
