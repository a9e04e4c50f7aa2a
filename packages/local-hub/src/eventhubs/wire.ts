// How an event and the management answers look on the wire, as IoT Hub's built-in endpoint sends
// them and @azure/event-hubs reads them: the iothub-* system properties and the x-opt-* positions
// as message annotations, the device's own properties as application properties, the body as one
// data section holding exactly the bytes the device sent.
import rhea from 'rhea';
import type { OutgoingAmqpMessage } from '../amqp/mapping.ts';
import type { StoredEvent } from './event.ts';
import type { PartitionInfo } from './partition-log.ts';

/** IoT Hub's `iothub-connection-auth-method` value, a JSON text. */
function authMethod(event: StoredEvent): string {
  return JSON.stringify({ scope: 'device', type: event.authType === 'sas' ? 'sas' : 'x509Certificate', issuer: 'iothub', acceptingIpFilterRule: null });
}

export interface RuntimeInfo {
  info: PartitionInfo;
  now: number;
}

export function eventToAmqp(event: StoredEvent, runtime?: RuntimeInfo): OutgoingAmqpMessage {
  const sp = event.systemProperties;
  const enqueued = new Date(event.enqueuedAt);
  const annotations: Record<string, unknown> = {
    'iothub-connection-device-id': event.deviceId,
    'iothub-connection-auth-method': authMethod(event),
    'iothub-connection-auth-generation-id': event.generationId,
    'iothub-enqueuedtime': enqueued,
    'iothub-message-source': 'Telemetry',
    'x-opt-sequence-number': rhea.types.wrap_long(event.sequenceNumber),
    'x-opt-offset': String(event.offset),
    'x-opt-enqueued-time': enqueued,
  };
  if (event.moduleId !== undefined) annotations['iothub-connection-module-id'] = event.moduleId;
  if (sp.interfaceId !== undefined) annotations['iothub-interface-id'] = sp.interfaceId;
  if (sp.subject !== undefined) annotations['dt-subject'] = sp.subject;
  const message: OutgoingAmqpMessage = {
    body: rhea.message.data_section(event.body),
    message_annotations: annotations,
    application_properties: { ...event.properties },
  };
  if (sp.messageId !== undefined) message.message_id = sp.messageId;
  if (sp.correlationId !== undefined) message.correlation_id = sp.correlationId;
  if (sp.contentType !== undefined) message.content_type = sp.contentType;
  if (sp.contentEncoding !== undefined) message.content_encoding = sp.contentEncoding;
  if (sp.userId !== undefined) message.user_id = Buffer.from(sp.userId, 'utf8');
  if (sp.expiryTimeUtc !== undefined) {
    const expiry = Date.parse(sp.expiryTimeUtc);
    if (Number.isFinite(expiry)) message.absolute_expiry_time = new Date(expiry);
  }
  // Sent only to receivers that asked (com.microsoft:enable-receiver-runtime-metric).
  if (runtime) {
    message.delivery_annotations = {
      last_enqueued_sequence_number: rhea.types.wrap_long(runtime.info.lastSequenceNumber),
      last_enqueued_offset: runtime.info.lastOffset,
      last_enqueued_time_utc: new Date(runtime.info.lastEnqueuedAt),
      runtime_info_retrieval_time_utc: new Date(runtime.now),
    };
  }
  return message;
}

/** The body of a `com.microsoft:eventhub` READ. */
export function eventHubReadBody(name: string, createdAt: number, partitionIds: string[]): Record<string, unknown> {
  return {
    name,
    type: 'com.microsoft:eventhub',
    created_at: new Date(createdAt),
    partition_count: partitionIds.length,
    partition_ids: partitionIds,
  };
}

/** The body of a `com.microsoft:partition` READ. */
export function partitionReadBody(name: string, partitionId: string, info: PartitionInfo): Record<string, unknown> {
  return {
    name,
    type: 'com.microsoft:partition',
    partition: partitionId,
    begin_sequence_number: rhea.types.wrap_long(info.beginSequenceNumber),
    last_enqueued_sequence_number: rhea.types.wrap_long(info.lastSequenceNumber),
    last_enqueued_offset: info.lastOffset,
    last_enqueued_time_utc: new Date(info.lastEnqueuedAt),
    is_partition_empty: info.isEmpty,
  };
}

export function managementReply(correlationId: unknown, status: number, description: string, body?: Record<string, unknown>): OutgoingAmqpMessage {
  const out: OutgoingAmqpMessage = { application_properties: { 'status-code': status, 'status-description': description } };
  if (correlationId !== undefined && correlationId !== null) out.correlation_id = correlationId;
  if (body !== undefined) out.body = body;
  return out;
}
