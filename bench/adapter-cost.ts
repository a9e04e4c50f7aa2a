// What the Switchyard client itself adds to one send, without the network: the Azure client is
// replaced by one whose sendEvent resolves at once, so the only difference between the two loops
// is our adapter (validation of the message, the SDK Message it builds, the deadline guard, the
// promise it returns). Run by main.ts in a child on the measured core; prints one JSON line.
// A lower bound only: whatever the client changes around a real send (SDK and transport options,
// timers, event-loop turns, garbage) cannot show here; bench/main.ts's end-to-end CPU ratio can.
//
//   node --import tsx bench/adapter-cost.ts [protocols] [sends] [oursModule]
//
// This measures only the adapter, on purpose: everything the stub removes (the SDK, rhea, mqtt.js,
// TLS, the hub) is the same code on both sides of the end-to-end comparison.
import type * as DeviceModule from '@switchyard/device';
import type { Protocol } from '@switchyard/profile';
import azureDevice from 'azure-iot-device';

const { Message } = azureDevice;
const protocols = (process.argv[2] ?? 'mqtt,amqp').split(',') as Protocol[];
const sends = Number(process.argv[3] ?? 300_000);
const { adaptAzureClient } = (process.argv[4] === undefined ? await import('@switchyard/device') : await import(process.argv[4])) as typeof DeviceModule;

/**
 * The Azure client's send surface, settled at once: what is left to time is the caller's own work.
 * Like the SDK, it answers a callback when given one (ours passes one) and a promise otherwise.
 */
class ResolvedAzureClient {
  sendEvent(_message: unknown, done?: (err: Error | null, result?: unknown) => void): Promise<unknown> {
    if (done === undefined) return Promise.resolve(undefined);
    done(null, undefined);
    // What the SDK returns for a callback call; the caller ignores it.
    return undefined as unknown as Promise<unknown>;
  }
  on(): this {
    return this;
  }
  removeListener(): this {
    return this;
  }
  setRetryPolicy(): void {}
  close(): Promise<unknown> {
    return Promise.resolve(undefined);
  }
}

const WINDOW = 16;
const ROUNDS = 5;

async function cpuPerSend(send: () => Promise<unknown>): Promise<number> {
  let issued = 0;
  const before = process.cpuUsage();
  await Promise.all(
    Array.from({ length: WINDOW }, async () => {
      while (issued++ < sends) await send();
    }),
  );
  const used = process.cpuUsage(before);
  return (used.user + used.system) / sends;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = (sorted.length - 1) / 2;
  return (sorted[Math.floor(mid)]! + sorted[Math.ceil(mid)]!) / 2;
};

const payload = Buffer.alloc(100, 'x');
const result: Record<string, { rawUs: number; oursUs: number }> = {};
for (const protocol of protocols) {
  const azure = new ResolvedAzureClient();
  const client = adaptAzureClient(azure, { protocol, deviceId: 'adapter-cost' });
  const raw = (): Promise<unknown> => azure.sendEvent(new Message(payload));
  const ours = (): Promise<unknown> => client.sendEvent(payload);
  // Warm both paths up to optimized code before anything is counted.
  await cpuPerSend(raw);
  await cpuPerSend(ours);
  const rawUs: number[] = [];
  const oursUs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    rawUs.push(await cpuPerSend(raw));
    oursUs.push(await cpuPerSend(ours));
  }
  result[protocol] = { rawUs: median(rawUs), oursUs: median(oursUs) };
  await client.close();
}
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
