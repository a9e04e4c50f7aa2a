// An actuator that must refuse malformed commands rather than silently drop them: it needs to
// reject C2D messages, which MQTT cannot do, so its profile lands on AMQP.
import type { ExampleDevice } from './example-device.ts';
import { isMain, profilePath, standalone, untilAborted } from './example-device.ts';

const VALID = new Set(['open', 'close']);

export const commandValidator: ExampleDevice = {
  name: 'command-validator',
  story: 'a valve actuator that rejects malformed commands',
  profile: profilePath('command-validator.json'),
  async run(client, { log, signal }) {
    if (!('onMethod' in client) || !('updateReported' in client)) throw new Error('this example needs twin and methods in its profile');
    client.onMethod('setpoint', (request) => {
      log(`setpoint: ${JSON.stringify(request.payload)}`);
      return { status: 200, payload: { accepted: true } };
    });
    const done = (async () => {
      for await (const message of client.messages({ signal })) {
        let command: unknown;
        try {
          command = (JSON.parse(message.body.toString()) as { command?: unknown }).command;
        } catch {
          command = undefined;
        }
        if (typeof command === 'string' && VALID.has(command)) {
          log(`command "${command}" accepted`);
          await message.complete();
        } else if ('reject' in message) {
          log(`rejected a malformed command: ${message.body.toString()}`);
          await message.reject();
        }
      }
    })();
    await client.sendEvent({ body: { position: 'closed' }, contentType: 'application/json', contentEncoding: 'utf-8' });
    await client.updateReported({ position: 'closed', acceptedCommands: [...VALID] });
    log('reported its position and the commands it accepts');
    await untilAborted(signal);
    await done.catch(() => undefined);
  },
};

if (isMain(import.meta.url)) await standalone(commandValidator);
