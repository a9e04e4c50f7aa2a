// The fault suite (support/fault-suite.ts) over amqp and its WebSocket flavour, against one local hub.
import { afterAll, beforeAll, describe } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { faultSuite } from './support/fault-suite.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});
afterAll(async () => {
  await hub?.close();
});

describe('fault suite over amqp', () => faultSuite(() => hub, 'amqp'));
describe('fault suite over amqp-ws', () => faultSuite(() => hub, 'amqp-ws'));
