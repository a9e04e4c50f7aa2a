// The one behavioural suite (support/device-client-suite.ts) over the identities of both gateway
// engines, over AMQP and AMQP-WS: a gateway identity's client must behave as connect()'s does.
import { afterAll, beforeAll, describe } from 'vitest';
import { silentLogger, startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { createGateway, type Gateway, type GatewayEngine } from '@switchyard/gateway';
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

const ENGINES: Array<[GatewayEngine, 'amqp' | 'amqp-ws']> = [
  ['lean', 'amqp'],
  ['lean', 'amqp-ws'],
  ['azure-client', 'amqp'],
  ['azure-client', 'amqp-ws'],
];

describe.each(ENGINES)('gateway identity, engine %s over %s', (engine, protocol) => {
  // One gateway per token lifetime the suite asks for: renewal is a gateway-wide setting.
  const gateways = new Map<string, Gateway>();
  async function gatewayFor(renewal: { tokenValidTimeInSeconds: number; tokenRenewalMarginInSeconds: number } | undefined): Promise<Gateway> {
    const key = renewal === undefined ? 'default' : `${renewal.tokenValidTimeInSeconds}/${renewal.tokenRenewalMarginInSeconds}`;
    let gateway = gateways.get(key);
    if (gateway === undefined) {
      gateway = await createGateway({
        engine,
        protocol,
        env: {},
        ca: hub.ca,
        endpoint: { host: hub.address, ports: hub.ports },
        ...(renewal === undefined ? {} : { tokenRenewal: renewal }),
      });
      gateways.set(key, gateway);
      const created = gateway;
      closers.push(() => created.close());
    }
    return gateway;
  }
  const context: SuiteContext = {
    hub: () => hub,
    async makeClient(options = {}) {
      const deviceId = freshDeviceId(`gw-${engine}-${protocol}`);
      hub.createDevice(deviceId);
      const gateway = await gatewayFor(options.tokenRenewal);
      const identity = await gateway.add({ deviceId, connectionString: hub.deviceConnectionString(deviceId, { protocol }) });
      return { client: identity.device, deviceId };
    },
  };
  deviceClientSuite(context, { protocol, twin: true, methods: true, rejectAbandon: true, polls: false });
});
