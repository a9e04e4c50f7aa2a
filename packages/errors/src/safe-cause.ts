// What of a foreign error may travel as a SwitchyardError's cause. The Azure SDK hangs whole
// HTTP requests and responses (the Authorization header: a live, replayable SAS token) and TLS
// options (a device's private key) on its errors, and `console.log(err)` prints all of it. So a
// cause is rebuilt from the fields that diagnose a failure, each redacted, and nothing else.
import { redactSecrets } from './redact.ts';

// Scalars that say what failed: Node system errors, HTTP statuses, AMQP conditions.
const DIAGNOSTIC_FIELDS = ['code', 'errno', 'syscall', 'address', 'port', 'statusCode', 'status', 'condition', 'reason'] as const;
// Where the SDKs keep the error underneath.
const NESTED_FIELDS = ['cause', 'innerError', 'transportError', 'amqpError'] as const;
const MAX_DEPTH = 5;

const isScalar = (value: unknown): value is string | number | boolean => ['string', 'number', 'boolean'].includes(typeof value);

export function safeCause(value: unknown, isTrusted: (value: unknown) => boolean, depth = 0, seen = new Set<unknown>()): unknown {
  if (typeof value === 'string') return redactSecrets(value);
  if (typeof value !== 'object' || value === null) return value;
  if (isTrusted(value)) return value;
  if (depth >= MAX_DEPTH || seen.has(value)) return undefined;
  seen.add(value);
  const source = value as Record<string, unknown>;
  const copy = new Error(redactSecrets(typeof source.message === 'string' ? source.message : String(source.description ?? source.message ?? '')));
  if (typeof source.name === 'string') copy.name = source.name;
  copy.stack = typeof source.stack === 'string' ? redactSecrets(source.stack) : `${copy.name}: ${copy.message}`;
  const fields = copy as unknown as Record<string, unknown>;
  for (const key of DIAGNOSTIC_FIELDS) {
    const field = source[key];
    if (isScalar(field)) fields[key] = typeof field === 'string' ? redactSecrets(field) : field;
  }
  // An HTTP status is often only on the attached response, which itself must not come along.
  const response = source.response as { statusCode?: unknown } | undefined;
  if (fields.statusCode === undefined && typeof response?.statusCode === 'number') fields.statusCode = response.statusCode;
  for (const key of NESTED_FIELDS) {
    if (source[key] === undefined) continue;
    const nested = safeCause(source[key], isTrusted, depth + 1, seen);
    if (nested !== undefined) {
      Object.defineProperty(copy, 'cause', { value: nested, enumerable: false, writable: true, configurable: true });
      break;
    }
  }
  return copy;
}
