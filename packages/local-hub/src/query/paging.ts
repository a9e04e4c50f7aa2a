// Pages of a query result, as IoT Hub hands them out: at most x-ms-max-item-count items, and an
// opaque x-ms-continuation token for the rest. The token names the offset and the query it
// belongs to, so a token cannot be replayed against another query.
import { createHash } from 'node:crypto';
import { QuerySyntaxError } from './ast.ts';

export const DEFAULT_PAGE_SIZE = 100;
/** The local hub's bound on one page; larger requests get pages of this size. */
export const MAX_PAGE_SIZE = 1000;

function queryHash(query: string): string {
  return createHash('sha256').update(query).digest('base64url').slice(0, 16);
}

export function encodeContinuation(query: string, offset: number): string {
  return Buffer.from(JSON.stringify({ o: offset, q: queryHash(query) })).toString('base64url');
}

/** The offset a token stands for; a token of another query or a forged one is refused. */
export function decodeContinuation(query: string, token: string): number {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, 'base64url').toString('utf8'));
  } catch {
    throw new QuerySyntaxError('the continuation token is not one this hub issued');
  }
  const { o, q } = (parsed ?? {}) as { o?: unknown; q?: unknown };
  if (typeof o !== 'number' || !Number.isInteger(o) || o < 0 || q !== queryHash(query)) throw new QuerySyntaxError('the continuation token is not one this hub issued for this query');
  return o;
}

export function pageOf<T>(query: string, items: readonly T[], offset: number, pageSize: number): { page: T[]; continuation?: string } {
  const size = Math.min(Math.max(1, pageSize), MAX_PAGE_SIZE);
  const page = items.slice(offset, offset + size);
  const next = offset + page.length;
  return next < items.length ? { page, continuation: encodeContinuation(query, next) } : { page };
}
