// A strict TypeScript consumer: compiled with tsc against the installed declaration files
// (module/moduleResolution nodenext, and again bundler), then run. Each @ts-expect-error is a
// promise of the types: when the line stops being an error, tsc fails on the unused directive.
import { connect, type DeviceClient } from '@switchyard/device';
import { createGateway, type Gateway } from '@switchyard/gateway';
import { silentLogger, startLocalHub } from '@switchyard/local-hub';
import { defineProfile, parseProfile, type ProfileDefinition } from '@switchyard/profile';
import { select } from '@switchyard/selector';
import { isSwitchyardError, type ErrorCode } from '@switchyard/errors';

const telemetryOnly = defineProfile({ $schema: './node_modules/@switchyard/profile/schema.json', features: ['telemetry'] });
const withTwin = defineProfile({ features: ['telemetry', 'c2d', 'twin'] });

async function main(): Promise<void> {
  const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
  try {
    hub.createDevice('ts-device');
    const common = { connectionString: hub.deviceConnectionString('ts-device'), ca: hub.ca, endpoint: { host: hub.address, ports: hub.ports } };

    const { client: plain } = await connect({ ...common, profile: telemetryOnly });
    await plain.sendEvent({ body: 'from ts' });
    // @ts-expect-error twin is not among the profile's features
    void plain.getTwin;
    await plain.close();

    const { client: twin, decision } = await connect({ ...common, profile: withTwin });
    const document = await twin.getTwin();
    await twin.updateReported({ fw: '1.0' });
    // @ts-expect-error methods are not among the profile's features
    void twin.onMethod;
    await twin.close();

    // A profile read at run time is checked by parseProfile and gives the general client.
    const general: DeviceClient = (await connect({ ...common, profile: parseProfile(JSON.parse('{"features":["telemetry"]}')) })).client;
    await general.close();

    const widened: ProfileDefinition = { c2d: 'none' };
    const choice = select(parseProfile(widened));
    const gateway: Gateway = await createGateway({ protocol: 'amqp', ca: hub.ca, endpoint: { host: hub.address, port: hub.ports.amqp }, identities: [] });
    await gateway.close();

    try {
      await connect({ connectionString: 'HostName=x', profile: telemetryOnly });
    } catch (err) {
      const code: ErrorCode | undefined = isSwitchyardError(err) ? err.code : undefined;
      console.log(JSON.stringify({ protocol: decision.protocol, twinVersion: typeof document.desired.$version, chosen: choice.protocol, badInput: code }));
    }
  } finally {
    await hub.close();
  }
}

void main();
