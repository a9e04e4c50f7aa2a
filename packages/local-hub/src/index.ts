// Public surface of @switchyard/local-hub. Front-end internals stay private; the core and store
// are exported so front-ends and gateway tests can run IoT Hub semantics without listeners.
export { startLocalHub, DEFAULT_HOST_NAME, STANDARD_PORTS, type LocalHub, type LocalHubOptions, type ConnectionStringProtocol } from './hub.ts';
export { createHubCore, LocalHubCore, LIMITS, SERVICE_POLICY, systemClock, type Clock, type HubCoreOptions } from './core/hub-core.ts';
export type { HubEvents, SessionInfo } from './core/events.ts';
export { HubError, HUB_ERROR_CODES, type HubErrorKind } from './core/errors.ts';
export { createSasToken, parseSasToken } from './core/sas.ts';
export type * from './core/types.ts';
export { openHubStore, type HubStore, type StoredTwin, type StoredC2D } from './store/index.ts';
export { ensureTlsMaterial, issueDeviceCertificate, type TlsMaterial, type DeviceCertificate } from './tls/index.ts';
export { DEFAULT_LIMITS, type HubLimits } from './limits.ts';
export { createConsoleLogger, createMemoryLogger, silentLogger } from './logger.ts';
