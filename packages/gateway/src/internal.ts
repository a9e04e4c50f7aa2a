// @switchyard/gateway/internal: the engines' parts, for this repository's tests and benches.
// Not part of the public API: it changes without notice.
export * from './index.ts';
export { parseIdentity, reopenDelayMs, isTransientFailure } from './gateway.ts';
export { AmqpConnectionPool, chooseConnection, type PoolEvents, type PoolOptions } from './pool.ts';
export { SharedAmqpConnection, type AmqpEndpoint, type AmqpTransportKind, type ConnectionState, type SharedConnectionOptions } from './amqp-connection.ts';
export { IdentityChannel, type ChannelState } from './identity-channel.ts';
export { translateAzureError } from './errors.ts';
export { decideProtocol } from './decide.ts';
