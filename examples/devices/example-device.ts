// What an example device is: a profile and the device-side behaviour. The demo runs each one
// against the embedded local hub; `standalone()` runs the same code against a real IoT Hub.
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { connect, type DeviceClient } from '@switchyard/device';

export interface DeviceContext {
  log(message: string): void;
  /** Aborted when the device should stop. */
  signal: AbortSignal;
}

export interface ExampleDevice {
  name: string;
  /** One line a person reads in the demo. */
  story: string;
  profile: string;
  run(client: DeviceClient, ctx: DeviceContext): Promise<void>;
}

export const profilePath = (file: string): string => fileURLToPath(new URL(`../profiles/${file}`, import.meta.url));

/** Resolves when the signal aborts; the device's listeners keep working meanwhile. */
export const untilAborted = (signal: AbortSignal): Promise<void> =>
  new Promise((resolve) => (signal.aborted ? resolve() : signal.addEventListener('abort', () => resolve(), { once: true })));

/**
 * Runs an example against a real hub:
 *   node --import tsx examples/devices/<name>.ts "<device connection string>" [--ca FILE] [--seconds N]
 * (or SWITCHYARD_CONNECTION_STRING). The cloud side — sending C2D, calling methods, changing
 * desired properties — is yours to do from the portal or the service SDK while it runs.
 */
export async function standalone(device: ExampleDevice, argv = process.argv.slice(2)): Promise<void> {
  const connectionString = argv.find((a) => a.includes('DeviceId=')) ?? process.env.SWITCHYARD_CONNECTION_STRING;
  if (!connectionString) {
    console.error(`usage: node --import tsx examples/devices/${device.name}.ts "<device connection string>" [--ca FILE] [--seconds N]`);
    process.exitCode = 2;
    return;
  }
  const caIndex = argv.indexOf('--ca');
  const ca = caIndex >= 0 && argv[caIndex + 1] ? await readFile(argv[caIndex + 1]!, 'utf8') : undefined;
  const secondsIndex = argv.indexOf('--seconds');
  const seconds = secondsIndex >= 0 ? Number(argv[secondsIndex + 1]) : 60;
  const { client, decision } = await connect({ connectionString, profile: device.profile, ...(ca ? { ca } : {}) });
  console.log(`${device.name}: ${decision.protocol} (port ${decision.port}); ${decision.because[0] ?? ''}`);
  const stop = new AbortController();
  const timer = setTimeout(() => stop.abort(), seconds * 1000);
  process.once('SIGINT', () => stop.abort());
  try {
    await device.run(client, { log: (m) => console.log(`${device.name}: ${m}`), signal: stop.signal });
  } finally {
    clearTimeout(timer);
    await client.close();
  }
}

export const isMain = (url: string): boolean => process.argv[1] !== undefined && fileURLToPath(url) === process.argv[1];
