// The outbox option of connect(): refused before any socket opens, naming the field.
import { describe, expect, it } from 'vitest';
import { isSwitchyardError } from '@switchyard/errors';
import { connect } from '../src/index.ts';

const connectionString = 'HostName=h.azure-devices.net;DeviceId=d1;SharedAccessKey=a2V5';

async function refusal(outbox: unknown): Promise<{ field: unknown; message: string }> {
  const error = await connect({ connectionString, outbox: outbox as never, endpoint: { host: '127.0.0.1', ports: { mqtt: 1 } } }).catch((e: unknown) => e);
  if (!isSwitchyardError(error, 'CONFIG_INVALID')) throw new Error(`expected CONFIG_INVALID, got ${String(error)}`);
  return { field: error.details.field, message: error.message };
}

describe('connect() outbox option', () => {
  it.each([
    [{ maxMessages: 0 }, 'outbox.maxMessages', />=1/],
    [{ maxMessages: 1.5 }, 'outbox.maxMessages', /int/],
    [{ maxBytes: -1 }, 'outbox.maxBytes', />=1/],
    [{ whenFull: 'drop-newest' }, 'outbox.whenFull', /reject-new.*drop-oldest/],
    [{ ttlMs: 0 }, 'outbox.ttlMs', />=1/],
    [{ dir: '' }, 'outbox.dir', /directory/],
    [{ size: 3 }, 'outbox.size', /unknown option/],
    ['yes', 'outbox', /object/],
  ])('refuses %j, naming %s', async (outbox, field, message) => {
    const refused = await refusal(outbox);
    expect(refused.field).toBe(field);
    expect(refused.message).toMatch(message);
  });
});
