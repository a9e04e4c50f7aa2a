// Shared set-up for the MQTT front-end suites: the real hub from startLocalHub() on 127.0.0.1:0,
// with an in-memory log so tests can check that refusals were audited.
import { createMemoryLogger } from '../../src/logger.ts';
import { createSasToken, startLocalHub, type LocalHub, type LocalHubOptions } from '../../src/index.ts';

export type MemoryLogger = ReturnType<typeof createMemoryLogger>;

export async function startTestHub(options: Omit<LocalHubOptions, 'logger'> = {}): Promise<{ hub: LocalHub; logger: MemoryLogger }> {
  const logger = createMemoryLogger();
  const hub = await startLocalHub({ ...options, logger });
  return { hub, logger };
}

/** Creates a SAS device (or reuses it) and returns its primary key. */
export function deviceKey(hub: LocalHub, deviceId: string): string {
  const record = hub.getDevice(deviceId) ?? hub.createDevice(deviceId);
  if (record.authentication.type !== 'sas') throw new Error(`${deviceId} is not a SAS device`);
  return record.authentication.primaryKey;
}

/** A device token as the Azure SDK mints it; negative `ttlSeconds` gives an expired one. */
export function deviceToken(hub: LocalHub, deviceId: string, key: string, ttlSeconds: number): string {
  return createSasToken(`${hub.hostName}/devices/${deviceId}`, key, Math.floor(Date.now() / 1000) + ttlSeconds);
}

/** Refusals the core audited for a device, by what was refused. */
export function refusals(logger: MemoryLogger, deviceId: string): string[] {
  return logger.entries.filter((e) => e.message === 'refused' && e.fields.deviceId === deviceId).map((e) => String(e.fields.what ?? ''));
}
