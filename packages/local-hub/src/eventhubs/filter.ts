// The receiver's start position, as @azure/event-hubs writes it into the source filter
// `apache.org:selector-filter:string`: `amqp.annotation.x-opt-offset > '-1'` and the like.
import type { StartPosition } from './partition-log.ts';

export const SELECTOR_FILTER = 'apache.org:selector-filter:string';

const EXPRESSION = /^\s*amqp\.annotation\.(x-opt-offset|x-opt-sequence-number|x-opt-enqueued-time)\s*(>=|>|=)\s*'([^']*)'\s*$/i;

export type FilterParse = { ok: true; position: StartPosition } | { ok: false; why: string };

/** rhea hands a described filter value over as the value itself or wrapped in `{ value }`. */
function filterText(value: unknown): string | undefined {
  for (let depth = 0; depth < 3; depth++) {
    if (typeof value === 'string') return value;
    if (typeof value !== 'object' || value === null || !('value' in value)) return undefined;
    value = (value as { value: unknown }).value;
  }
  return undefined;
}

function integer(text: string): number | undefined {
  if (!/^-?\d{1,16}$/.test(text)) return undefined;
  const n = Number(text);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** Parses a link source's filter map; no selector filter means the start of the partition. */
export function parseStartFilter(filter: unknown): FilterParse {
  if (filter === undefined || filter === null) return { ok: true, position: { kind: 'earliest' } };
  if (typeof filter !== 'object') return { ok: false, why: 'the source filter is not a map' };
  const raw = (filter as Record<string, unknown>)[SELECTOR_FILTER];
  if (raw === undefined) return { ok: true, position: { kind: 'earliest' } };
  const text = filterText(raw);
  if (text === undefined) return { ok: false, why: `${SELECTOR_FILTER} is not a string` };
  const m = EXPRESSION.exec(text);
  if (!m) return { ok: false, why: `unsupported selector filter: ${text.slice(0, 200)}` };
  const field = m[1]!.toLowerCase();
  const inclusive = m[2] !== '>';
  const value = m[3]!;
  if (field === 'x-opt-offset') {
    if (value === '@latest') return { ok: true, position: { kind: 'latest' } };
    const offset = integer(value);
    if (offset === undefined) return { ok: false, why: `offset '${value}' is not a number` };
    if (offset < 0) return { ok: true, position: { kind: 'earliest' } };
    return { ok: true, position: { kind: 'offset', offset, inclusive } };
  }
  const n = integer(value);
  if (n === undefined) return { ok: false, why: `'${value}' is not a number` };
  if (field === 'x-opt-sequence-number') return { ok: true, position: { kind: 'sequence', sequenceNumber: n, inclusive } };
  return { ok: true, position: { kind: 'enqueued', time: n, inclusive } };
}
