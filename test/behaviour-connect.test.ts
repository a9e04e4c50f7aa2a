// The one behavioural suite (support/device-client-suite.ts) over connect() for each of the five
// protocols; behaviour-gateway.test.ts runs it over the gateway engines' identities. One hub for
// the file; every test makes its own device.
import { afterAll, beforeAll, describe } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { connect, type DeviceClient } from '@switchyard/device';
import type { Feature, ProfileDefinition, Protocol } from '@switchyard/profile';
import { deviceClientSuite, freshDeviceId, type SuiteContext } from './support/device-client-suite.ts';

let hub: LocalHub;
const closers: Array<() => Promise<unknown>> = [];

beforeAll(async () => {
  hub = await startLocalHub({ inMemory: true, logger: silentLogger });
});

afterAll(async () => {
  for (const close of closers.reverse()) await close().catch(() => undefined);
  await hub?.close();
});

const PROTOCOLS: Protocol[] = ['mqtt', 'mqtt-ws', 'amqp', 'amqp-ws', 'https'];
const rejectAbandon = (p: Protocol): boolean => p === 'amqp' || p === 'amqp-ws' || p === 'https';

function profileFor(protocol: Protocol): ProfileDefinition {
  // Development mode so the suite can poll every second; the production floor has its own tests.
  if (protocol === 'https') return { features: ['telemetry', 'batch', 'c2d', 'c2d-reject-abandon'], environment: 'development', pollIntervalSeconds: 1 };
  const features: Feature[] = ['telemetry', 'c2d', 'twin', 'methods'];
  if (rejectAbandon(protocol)) features.push('c2d-reject-abandon');
  return { features };
}

describe.each(PROTOCOLS)('connect() over %s', (protocol) => {
  const context: SuiteContext = {
    hub: () => hub,
    async makeClient(options = {}) {
      const deviceId = freshDeviceId(protocol);
      hub.createDevice(deviceId);
      const { client } = await connect({
        connectionString: hub.deviceConnectionString(deviceId, { protocol }),
        ca: hub.ca,
        profile: profileFor(protocol),
        forceProtocol: protocol,
        endpoint: { host: hub.address, ports: hub.ports },
        connectTimeoutMs: 15_000,
        operationTimeoutMs: 15_000,
        ...(options.tokenRenewal === undefined ? {} : { tokenRenewal: options.tokenRenewal }),
      });
      closers.push(() => client.close());
      return { client: client as DeviceClient, deviceId };
    },
  };
  deviceClientSuite(context, { protocol, twin: protocol !== 'https', methods: protocol !== 'https', rejectAbandon: rejectAbandon(protocol), polls: protocol === 'https' });
});

