// A device that can run only HTTPS and wakes rarely: it sends a batch and picks up commands by
// polling. This profile is in development mode (2 s polls) so the demo finishes quickly; in
// production the client polls no more than once every 25 minutes.
import type { ExampleDevice } from './example-device.ts';
import { isMain, profilePath, standalone, untilAborted } from './example-device.ts';

export const rarelyConnected: ExampleDevice = {
  name: 'rarely-connected',
  story: 'a data logger that speaks only HTTPS (development mode: 2 s polls)',
  profile: profilePath('rarely-connected-https-dev.json'),
  async run(client, { log, signal }) {
    client.on('poll', (p) => log(`polled: ${p.outcome}, ${p.received} message(s); next poll not before ${p.nextPollAt.toISOString().slice(11, 19)}`));
    const done = (async () => {
      for await (const message of client.messages({ signal })) {
        log(`command: ${message.body.toString()}`);
        await message.complete();
      }
    })();
    const batch = Array.from({ length: 5 }, (_, i) => ({ body: { sample: i, level: 0.5 + i / 10 }, contentType: 'application/json', contentEncoding: 'utf-8' }));
    await client.sendEventBatch(batch);
    log('sent a batch of 5 samples in one request');
    await untilAborted(signal);
    await done.catch(() => undefined);
  },
};

if (isMain(import.meta.url)) await standalone(rarelyConnected);
