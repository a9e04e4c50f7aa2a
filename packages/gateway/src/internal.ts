// @switchyard/gateway/internal: the engines' parts, for this repository's tests and benches.
// Not part of the public API: it changes without notice.
export * from './index.ts';
export { parseIdentity, reopenDelayMs, validateOptions, type GatewaySettings, type ParsedIdentity } from './options.ts';
export { AmqpConnectionPool, chooseConnection, type PoolEvents, type PoolOptions } from './amqp/pool.ts';
export { SharedAmqpConnection, type AmqpEndpoint, type AmqpTransportKind, type SharedConnectionOptions } from './amqp/connection.ts';
export { IdentityChannel } from './amqp/identity-channel.ts';
export { IdentityLink } from './amqp/identity-link.ts';
export { decideProtocol } from './decide.ts';
