// The device the backend looks after, run in the same program so the example is self-contained:
// a sensor on @switchyard/device that sends readings, applies `set-interval` commands sent as C2D,
// and answers the `get-status` direct method with what it is doing.
import { connect, type ClientFor } from '@switchyard/device';
import type { Decision } from '@switchyard/selector';
import type { HubClients } from './clients.ts';

export const STATUS_METHOD = 'get-status';

export interface SensorCommand {
  command: 'set-interval';
  seconds: number;
}

export interface SensorStatus {
  intervalSeconds: number;
  commandsApplied: number;
  /** The method's request payload, returned so the caller can see its call arrived intact. */
  asked: unknown;
}

export interface Sensor {
  client: ClientFor<'telemetry' | 'c2d' | 'methods'>;
  decision: Decision;
  /** Commands in the order they arrived, with the C2D message id. */
  commands: Array<{ messageId: string | undefined; body: unknown }>;
  /** Resolves with the first command carrying `messageId`. */
  commandArrived(messageId: string): Promise<unknown>;
  sendReadings(count: number, runId: string): Promise<void>;
  close(): Promise<void>;
}

function parseCommand(body: Buffer): SensorCommand | undefined {
  try {
    const value = JSON.parse(body.toString('utf8')) as Partial<SensorCommand>;
    return value.command === 'set-interval' && typeof value.seconds === 'number' ? { command: 'set-interval', seconds: value.seconds } : undefined;
  } catch {
    return undefined;
  }
}

export async function startSensor(connectionString: string, hub: HubClients, signal: AbortSignal): Promise<Sensor> {
  const { client, decision } = await connect({
    connectionString,
    profile: { features: ['telemetry', 'c2d', 'methods'] },
    ...hub.device,
    signal,
  });
  let intervalSeconds = 60;
  const commands: Sensor['commands'] = [];
  const waiting = new Map<string, (body: unknown) => void>();

  // Methods first: the hub answers 404103 (device not online) to a call until the device listens.
  client.onMethod(STATUS_METHOD, (request) => {
    const status: SensorStatus = { intervalSeconds, commandsApplied: commands.length, asked: request.payload };
    return { status: 200, payload: status };
  });

  const inbox = (async () => {
    for await (const message of client.messages({ signal })) {
      const command = parseCommand(message.body);
      if (command) {
        intervalSeconds = command.seconds;
        commands.push({ messageId: message.messageId, body: command });
        if (message.messageId !== undefined) waiting.get(message.messageId)?.(command);
      }
      // Completing is what turns into positive delivery feedback for the sender.
      await message.complete();
    }
  })().catch(() => undefined);

  return {
    client,
    decision,
    commands,
    commandArrived: (messageId) => {
      const seen = commands.find((c) => c.messageId === messageId);
      if (seen) return Promise.resolve(seen.body);
      return new Promise((resolve) => waiting.set(messageId, resolve));
    },
    async sendReadings(count, runId) {
      for (let seq = 0; seq < count; seq++) {
        await client.sendEvent({
          body: { temperature: 21 + seq / 10, seq },
          contentType: 'application/json',
          contentEncoding: 'utf-8',
          messageId: `${runId}-${seq}`,
          properties: { runId, seq: String(seq), unit: 'C' },
        });
      }
    },
    async close() {
      await client.close();
      await inbox;
    },
  };
}
