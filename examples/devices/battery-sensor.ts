// A coin-cell sensor: a few readings, its battery level in the twin, a desired sampling interval.
import type { ExampleDevice } from './example-device.ts';
import { isMain, profilePath, standalone, untilAborted } from './example-device.ts';

export const batterySensor: ExampleDevice = {
  name: 'battery-sensor',
  story: 'a coin-cell temperature sensor with 256 KiB of RAM',
  profile: profilePath('battery-sensor.json'),
  async run(client, { log, signal }) {
    if (!('getTwin' in client)) throw new Error('this example needs a profile with the twin feature');
    client.on('desired', (patch) => log(`desired properties changed: ${JSON.stringify(patch)}`));
    const done = (async () => {
      for await (const message of client.messages({ signal })) {
        log(`command: ${message.body.toString()}`);
        await message.complete();
      }
    })();
    for (let i = 0; i < 3; i++) {
      await client.sendEvent({ body: { temperature: 20 + i / 2, unit: 'C' }, contentType: 'application/json', contentEncoding: 'utf-8', properties: { kind: 'reading' } });
    }
    await client.updateReported({ battery: { percent: 87, volts: 2.9 } });
    log('sent 3 readings and reported battery 87 %');
    await untilAborted(signal);
    await done.catch(() => undefined);
  },
};

if (isMain(import.meta.url)) await standalone(batterySensor);
