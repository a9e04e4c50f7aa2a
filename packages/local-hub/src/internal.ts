// @switchyard/local-hub/internal: the hub's core, store, TLS material and fault machinery, for
// this repository's tests and benches. Not part of the public API: it changes without notice.
export * from './index.ts';
export { createHubCore, LocalHubCore, type HubCoreOptions } from './core/hub-core.ts';
export { resolveC2DOptions } from './core/c2d-options.ts';
export { systemClock, ManualClock } from '@switchyard/time';
export { PersistentSubscriptions } from './mqtt/subscriptions.ts';
export { HubError, HUB_ERROR_CODES, type HubErrorKind } from './core/errors.ts';
export { openHubStore, type HubStore, type StoredTwin, type StoredC2D } from './store/index.ts';
export { ensureTlsMaterial, type TlsMaterial } from './tls/index.ts';
export * from './faults/index.ts';
