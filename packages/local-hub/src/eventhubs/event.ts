// One event as the Event Hubs-compatible endpoint holds it: what the device sent, what IoT Hub
// stamps on it (the iothub-* system properties), and where it sits in its partition.
import type { SystemProperties } from '../core/types.ts';

/** What the hub knows about a telemetry message when it enters the endpoint. */
export interface EventInput {
  deviceId: string;
  /** Set when a module identity sent it, for `iothub-connection-module-id`. */
  moduleId?: string;
  /** `sas` or `x509`: how the sending connection authenticated, for `iothub-connection-auth-method`. */
  authType: 'sas' | 'x509';
  /** The device record's generation id, for `iothub-connection-auth-generation-id`. */
  generationId: string;
  body: Buffer;
  properties: Record<string, string>;
  systemProperties: SystemProperties;
}

export interface StoredEvent extends EventInput {
  sequenceNumber: number;
  /** Byte position in the partition's stream, as Event Hubs offsets are. */
  offset: number;
  /** Epoch ms. */
  enqueuedAt: number;
  /** Bytes counted against the partition's retention: body plus properties. */
  size: number;
}

/** The bytes an event costs in retention; the same measure IoT Hub applies to telemetry size. */
export function eventSize(input: EventInput): number {
  let size = input.body.length + Buffer.byteLength(input.deviceId);
  for (const [k, v] of Object.entries(input.properties)) size += Buffer.byteLength(k) + Buffer.byteLength(v);
  for (const v of Object.values(input.systemProperties)) if (typeof v === 'string') size += Buffer.byteLength(v);
  return size;
}
