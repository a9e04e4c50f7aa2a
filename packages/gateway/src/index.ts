// The public surface of @switchyard/gateway. The engines' parts (pool, shared connection,
// identity channels and links) are in ./internal.ts, for this repository's tests and benches only.
export { createGateway } from './create-gateway.ts';
export type {
  Gateway,
  GatewayEngine,
  GatewayEvents,
  GatewayIdentity,
  GatewayIdentityInput,
  GatewayOptions,
  GatewayProtocol,
  IdentityEvents,
  IdentityState,
  OpenSummary,
  ReconnectPolicy,
  TokenRenewal,
} from './types.ts';
export { DEFAULT_MAX_IDENTITIES_PER_CONNECTION, type ConnectionInfo } from './amqp/pool.ts';
export type { ConnectionState } from '@switchyard/device';
