// The public surface of @switchyard/local-hub: start a hub, drive it as a test would (registry,
// C2D, twins, methods, telemetry, faults), and read its events. The core, the store and the
// front-ends' parts are in ./internal.ts, for this repository's tests and benches only.
export { startLocalHub, DEFAULT_HOST_NAME, STANDARD_PORTS, type LocalHub, type LocalHubOptions, type ConnectionStringProtocol } from './hub.ts';
export type { EventHubsControl, EventHubsOptions, PartitionInfo, Retention } from './eventhubs/index.ts';
export { LIMITS, SERVICE_POLICY } from './core/hub-core.ts';
export type { Clock, TimerHandle } from '@switchyard/time';
export { BUILT_IN_POLICIES, POLICY_NAMES, type PolicyAuthResult, type PolicyName, type PolicyRight } from './core/policies.ts';
export type { C2DOutcome, C2DSettledEvent, HubEvents, SessionInfo } from './core/events.ts';
export type { ServiceSideOptions } from './amqp/service-side.ts';
export type { FeedbackOptions } from './amqp/feedback.ts';
export type { ServiceBoundLimits } from './amqp/service-queue.ts';
export type * from './core/types.ts';
export type * from './core/module-types.ts';
export { createSasToken, parseSasToken, type ParsedSas } from './core/sas.ts';
export { issueDeviceCertificate, type DeviceCertificate } from './tls/index.ts';
export { DEFAULT_LIMITS, type HubLimits } from './limits.ts';
export type { C2DOptions } from './core/c2d-options.ts';
export { createConsoleLogger, createMemoryLogger, silentLogger } from './logger.ts';
export { FAULT_PROPERTIES, KILL_FAULTS, WINDOW_FAULTS, NETWORK_FAULTS, DEFAULT_WINDOW_SECONDS, type FaultType, type KillFault, type WindowFault } from './faults/index.ts';
export type { ActiveFault, FaultControl, FaultEvent, FaultInjection, NetworkFaultKind, NetworkFaultRequest } from './faults/index.ts';
