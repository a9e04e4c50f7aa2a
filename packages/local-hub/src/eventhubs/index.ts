// The Event Hubs-compatible endpoint ("built-in endpoint") of the local hub: what hub.ts builds
// and what the LocalHub handle exposes. Backends read it with @azure/event-hubs unchanged.
import type { Clock } from '@switchyard/time';
import type { HubLogger, TelemetryRecord } from '../core/types.ts';
import type { AmqpRoute } from '../amqp/route.ts';
import type { SharedAccessPolicy } from './auth.ts';
import { createEventHubsRoute } from './amqp-route.ts';
import { EventHubEndpoint } from './endpoint.ts';
import type { EventInput } from './event.ts';
import type { PartitionInfo, Retention } from './partition-log.ts';

export { DEFAULT_CONSUMER_GROUP, DEFAULT_PARTITION_COUNT, DEFAULT_RETENTION, EventHubEndpoint, partitionOfDevice } from './endpoint.ts';
export { PartitionLog, type PartitionInfo, type Retention, type StartPosition } from './partition-log.ts';
export { parseStartFilter } from './filter.ts';
export { PartitionOwnership } from './ownership.ts';
export { checkClaim, parseEventHubsAudience } from './auth.ts';
export type { EventInput, StoredEvent } from './event.ts';

export interface EventHubsOptions {
  /** The event hub's name (EntityPath); default: the hub's name, the first label of hostName, as IoT Hub does. */
  name?: string;
  /** Default 4, as IoT Hub's default; 1 to 128. */
  partitionCount?: number;
  /** Per partition; default 10,000 events and 16 MiB, whichever is reached first. The oldest go first. */
  retention?: Partial<Retention>;
  /** Consumer groups besides `$Default`, created on start (kept in the state dir). */
  consumerGroups?: string[];
}

/** The endpoint as the LocalHub handle shows it. */
export interface EventHubsControl {
  readonly name: string;
  readonly partitionIds: readonly string[];
  /** `Endpoint=sb://…;SharedAccessKeyName=iothubowner;SharedAccessKey=…;EntityPath=<name>` for the AMQP (TLS) listener. */
  readonly connectionString: string;
  /** For `customEndpointAddress` with `webSocketOptions`: the HTTPS listener, where `/$servicebus/websocket` is served. */
  readonly webSocketEndpoint: string;
  /** The partition a device's telemetry lands on. */
  partitionOf(deviceId: string): string;
  partitionInfo(partitionId: string): PartitionInfo | undefined;
  consumerGroups(): string[];
  /** Creates a consumer group (idempotent, names case-insensitive), as the portal's "Built-in endpoints" page does. */
  createConsumerGroup(name: string): string;
  deleteConsumerGroup(name: string): boolean;
}

export interface EventHubsDeps {
  options: EventHubsOptions;
  hubName: string;
  /** Where events and consumer groups persist; in memory without it. */
  dir: string | undefined;
  hosts: string[];
  policies: SharedAccessPolicy[];
  logger: HubLogger;
  clock: Clock;
  /** How the device authenticated, for the iothub-connection-* properties. */
  deviceInfo(deviceId: string): { authType: 'sas' | 'x509'; generationId: string } | undefined;
}

export interface EventHubsService {
  endpoint: EventHubEndpoint;
  route: AmqpRoute;
  /** Feeds one accepted telemetry message into its partition. */
  accept(record: TelemetryRecord): void;
  control(addresses: { connectionString: string; webSocketEndpoint: string }): EventHubsControl;
  close(): void;
}

export function createEventHubs(deps: EventHubsDeps): EventHubsService {
  const name = deps.options.name ?? deps.hubName;
  const endpoint = new EventHubEndpoint({
    name,
    ...(deps.options.partitionCount === undefined ? {} : { partitionCount: deps.options.partitionCount }),
    ...(deps.options.retention === undefined ? {} : { retention: deps.options.retention }),
    ...(deps.options.consumerGroups === undefined ? {} : { consumerGroups: deps.options.consumerGroups }),
    ...(deps.dir === undefined ? {} : { dir: deps.dir }),
    logger: deps.logger,
    now: () => deps.clock.now(),
  });
  const route = createEventHubsRoute({ endpoint, rules: { entity: name, hosts: deps.hosts, policies: deps.policies }, logger: deps.logger, clock: deps.clock });
  return {
    endpoint,
    route,
    accept(record) {
      const device = deps.deviceInfo(record.deviceId);
      // Module identities (when the hub has them) put their module id on the record.
      const { moduleId } = record as TelemetryRecord & { moduleId?: string };
      const input: EventInput = {
        deviceId: record.deviceId,
        ...(moduleId === undefined ? {} : { moduleId }),
        authType: device?.authType ?? 'sas',
        generationId: device?.generationId ?? '',
        body: record.body,
        properties: record.properties,
        systemProperties: record.systemProperties,
      };
      const at = Date.parse(record.receivedAt);
      endpoint.append(input, Number.isFinite(at) ? at : deps.clock.now());
    },
    control: ({ connectionString, webSocketEndpoint }) => ({
      name,
      partitionIds: endpoint.partitionIds,
      connectionString,
      webSocketEndpoint,
      partitionOf: (deviceId) => String(endpoint.partitionOf(deviceId)),
      partitionInfo: (partitionId) => endpoint.partitionInfo(partitionId),
      consumerGroups: () => endpoint.consumerGroups(),
      createConsumerGroup: (group) => endpoint.createConsumerGroup(group),
      deleteConsumerGroup: (group) => endpoint.deleteConsumerGroup(group),
    }),
    close: () => endpoint.close(),
  };
}
