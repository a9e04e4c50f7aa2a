export {
  createGateway,
  parseIdentity,
  reopenDelayMs,
  isTransientFailure,
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
export { AmqpConnectionPool, chooseConnection, DEFAULT_MAX_IDENTITIES_PER_CONNECTION, type ConnectionInfo, type PoolEvents, type PoolOptions } from './pool.ts';
export { SharedAmqpConnection, type AmqpEndpoint, type AmqpTransportKind, type ConnectionState, type SharedConnectionOptions } from './amqp-connection.ts';
export { IdentityChannel, type ChannelState } from './identity-channel.ts';
export { translateAzureError } from './errors.ts';
export { decideProtocol } from './decide.ts';
