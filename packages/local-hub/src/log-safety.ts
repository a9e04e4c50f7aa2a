// Log fields often carry text a peer chose: topics, link addresses, header values, device ids from
// a path, parser errors quoting input. Before any of it reaches a sink (the hub's own or one the
// caller passed in), secrets are redacted, control characters are made visible so a peer cannot
// forge log lines, and long strings are cut so a peer cannot make the log the resource it exhausts.
import { redactSecrets } from '@switchyard/errors';
import type { HubLogger } from './core/types.ts';

export const MAX_LOGGED_STRING = 2_000;
const MAX_DEPTH = 4;
const MAX_KEYS = 50;

// C0 and C1 controls, DEL, and the Unicode line and paragraph separators.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/** Wire-derived text made safe to log: redacted, control characters escaped, length capped. */
export function wireText(value: string, max = MAX_LOGGED_STRING): string {
  const cut = value.length > max ? `${value.slice(0, max)}…(+${value.length - max} chars)` : value;
  return redactSecrets(cut).replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

function sanitize(value: unknown, depth: number): unknown {
  if (typeof value === 'string') return wireText(value);
  if (value === null || typeof value !== 'object') return value;
  if (depth >= MAX_DEPTH) return '[…]';
  if (Buffer.isBuffer(value)) return `<${value.length} bytes>`;
  if (Array.isArray(value)) return value.slice(0, MAX_KEYS).map((v) => sanitize(v, depth + 1));
  if (value instanceof Error) return wireText(`${value.name}: ${value.message}`);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value).slice(0, MAX_KEYS)) out[wireText(k, 100)] = sanitize(v, depth + 1);
  return out;
}

/** Wraps `inner` so every message and field passes through wireText first. */
export function wireSafeLogger(inner: HubLogger): HubLogger {
  const fieldsOf = (fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined =>
    fields === undefined ? undefined : (sanitize(fields, 0) as Record<string, unknown>);
  return {
    info(message, fields) {
      inner.info(wireText(message), fieldsOf(fields));
    },
    warn(message, fields) {
      inner.warn(wireText(message), fieldsOf(fields));
    },
  };
}
