// A meter on a corporate network that lets only port 443 out: MQTT over WebSockets, with a
// reboot method and its configuration in the twin.
import type { ExampleDevice } from './example-device.ts';
import { isMain, profilePath, standalone, untilAborted } from './example-device.ts';

export const firewalledMeter: ExampleDevice = {
  name: 'firewalled-meter',
  story: 'a power meter behind a firewall that lets only 443 out',
  profile: profilePath('firewall-443-only.json'),
  async run(client, { log, signal }) {
    if (!('onMethod' in client) || !('updateReported' in client)) throw new Error('this example needs twin and methods in its profile');
    client.onMethod('reboot', (request) => {
      log(`reboot requested: ${JSON.stringify(request.payload)}`);
      return { status: 200, payload: { rebootingInSeconds: 5 } };
    });
    client.on('desired', (patch) => log(`desired properties changed: ${JSON.stringify(patch)}`));
    const done = (async () => {
      for await (const message of client.messages({ signal })) {
        log(`command: ${message.body.toString()}`);
        await message.complete();
      }
    })();
    await client.sendEvent({ body: { kWh: 1234.5 }, contentType: 'application/json', contentEncoding: 'utf-8' });
    await client.updateReported({ firmware: '4.2.0' });
    log('sent a reading and reported firmware 4.2.0');
    await untilAborted(signal);
    await done.catch(() => undefined);
  },
};

if (isMain(import.meta.url)) await standalone(firewalledMeter);
