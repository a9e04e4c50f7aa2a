import { redactSecrets } from '@switchyard/errors';
import type { HubLogger } from './core/types.ts';

// Field values can carry tokens or connection strings that a front-end copied from the wire, so
// the default sinks redact every line they write rather than trusting callers.
function line(level: string, message: string, fields?: Record<string, unknown>): string {
  const record = { time: new Date().toISOString(), level, message, ...fields };
  let text: string;
  try {
    text = JSON.stringify(record);
  } catch {
    text = JSON.stringify({ time: record.time, level, message, fields: '<unserializable>' });
  }
  return redactSecrets(text);
}

/** One JSON line per event on stderr (stdout stays free for the CLI's ready line). */
export function createConsoleLogger(options: { quiet?: boolean } = {}): HubLogger {
  return {
    info(message, fields) {
      if (!options.quiet) process.stderr.write(line('info', message, fields) + '\n');
    },
    warn(message, fields) {
      process.stderr.write(line('warn', message, fields) + '\n');
    },
  };
}

export const silentLogger: HubLogger = { info() {}, warn() {} };

/** Keeps entries in memory; tests use it to assert that refusals were audited. */
export function createMemoryLogger(): HubLogger & { entries: Array<{ level: 'info' | 'warn'; message: string; fields: Record<string, unknown> }> } {
  const entries: Array<{ level: 'info' | 'warn'; message: string; fields: Record<string, unknown> }> = [];
  return {
    entries,
    info(message, fields) { entries.push({ level: 'info', message, fields: JSON.parse(redactSecrets(JSON.stringify(fields ?? {}))) as Record<string, unknown> }); },
    warn(message, fields) { entries.push({ level: 'warn', message, fields: JSON.parse(redactSecrets(JSON.stringify(fields ?? {}))) as Record<string, unknown> }); },
  };
}
