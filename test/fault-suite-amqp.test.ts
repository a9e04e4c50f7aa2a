// The fault suite (support/fault-suite.ts) over amqp and its WebSocket flavour, against one local hub
// whose C2D lock is short (FAULT_C2D_LOCK_MS): a message delivered on a link the fault cut comes back
// within the case's bound.
import { afterAll, beforeAll, describe } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { FAULT_C2D_LOCK_MS, faultSuite } from './support/fault-suite.ts';

let hub: LocalHub;
beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger, c2d: { lockTimeoutMs: FAULT_C2D_LOCK_MS } });
});
afterAll(async () => {
  await hub?.close();
});

describe('fault suite over amqp', () => faultSuite(() => hub, 'amqp'));
describe('fault suite over amqp-ws', () => faultSuite(() => hub, 'amqp-ws'));
