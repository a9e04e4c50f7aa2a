// The public surface of @switchyard/gateway. The engines' parts (pool, shared connection,
// identity channels) are in ./internal.ts, for this repository's tests and benches only.
export {
  createGateway,
  type Gateway,
  type GatewayEngine,
  type GatewayEvents,
  type GatewayIdentity,
  type GatewayIdentityInput,
  type GatewayOptions,
  type GatewayProtocol,
  type IdentityEvents,
  type IdentityState,
  type OpenSummary,
  type ReconnectPolicy,
  type TokenRenewal,
} from './gateway.ts';
export { DEFAULT_MAX_IDENTITIES_PER_CONNECTION, type ConnectionInfo } from './pool.ts';
export type { ConnectionState } from './amqp-connection.ts';
