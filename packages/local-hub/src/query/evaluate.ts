// Evaluates a parsed query against twin documents with the query language's three-valued logic:
// a comparison with a missing property, or between values of different types, is undefined,
// and a document is selected only when its WHERE condition is true.
import type { Condition, Operand, Path, Projection, TwinQuery } from './ast.ts';

type Truth = boolean | undefined;
type Value = unknown;

function resolve(document: Record<string, unknown>, path: Path): Value {
  let node: unknown = document;
  for (const segment of path.segments) {
    if (typeof node !== 'object' || node === null || Array.isArray(node) || !Object.hasOwn(node, segment)) return undefined;
    node = (node as Record<string, unknown>)[segment];
  }
  return node;
}

function valueOf(document: Record<string, unknown>, operand: Operand): Value {
  return operand.kind === 'literal' ? operand.value : resolve(document, operand);
}

function kindOf(value: Value): 'string' | 'number' | 'boolean' | 'null' | 'other' {
  if (value === null) return 'null';
  const t = typeof value;
  return t === 'string' || t === 'number' || t === 'boolean' ? t : 'other';
}

function compare(op: string, a: Value, b: Value): Truth {
  if (a === undefined || b === undefined) return undefined;
  const kind = kindOf(a);
  if (kind === 'other' || kind !== kindOf(b)) return undefined;
  if (op === '=') return a === b;
  if (op === '!=') return a !== b;
  // Order is defined for numbers and strings only.
  if (kind !== 'number' && kind !== 'string') return undefined;
  const x = a as number | string;
  const y = b as number | string;
  switch (op) {
    case '<': return x < y;
    case '>': return x > y;
    case '<=': return x <= y;
    case '>=': return x >= y;
    default: return undefined;
  }
}

export function truth(document: Record<string, unknown>, condition: Condition): Truth {
  switch (condition.kind) {
    case 'compare':
      return compare(condition.op, valueOf(document, condition.left), valueOf(document, condition.right));
    case 'defined':
      return resolve(document, condition.path) !== undefined;
    case 'not': {
      const inner = truth(document, condition.condition);
      return inner === undefined ? undefined : !inner;
    }
    case 'and': {
      const left = truth(document, condition.left);
      if (left === false) return false;
      const right = truth(document, condition.right);
      if (right === false) return false;
      return left === undefined || right === undefined ? undefined : true;
    }
    case 'or': {
      const left = truth(document, condition.left);
      if (left === true) return true;
      const right = truth(document, condition.right);
      if (right === true) return true;
      return left === undefined || right === undefined ? undefined : false;
    }
  }
}

export function matches(document: Record<string, unknown>, query: TwinQuery): boolean {
  return query.where === undefined || truth(document, query.where) === true;
}

function project(document: Record<string, unknown>, projection: Projection): Record<string, unknown> {
  if (projection.kind !== 'fields') return document;
  const out: Record<string, unknown> = {};
  for (const { path, alias } of projection.fields) {
    const value = resolve(document, path);
    if (value !== undefined) out[alias] = value;
  }
  return out;
}

/** The whole result of a query over `documents`, before paging. */
export function runQuery(query: TwinQuery, documents: Iterable<Record<string, unknown>>): { items: Record<string, unknown>[]; itemType: 'Twin' | 'Raw' } {
  const selected: Record<string, unknown>[] = [];
  for (const document of documents) {
    if (query.top !== undefined && selected.length >= query.top) break;
    if (matches(document, query)) selected.push(document);
  }
  if (query.select.kind === 'count') return { items: [{ [query.select.alias]: selected.length }], itemType: 'Raw' };
  if (query.select.kind === 'all') return { items: selected, itemType: 'Twin' };
  const projection = query.select;
  return { items: selected.map((d) => project(d, projection)), itemType: 'Raw' };
}
