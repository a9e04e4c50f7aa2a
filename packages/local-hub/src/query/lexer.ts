// Tokens of the IoT Hub query language: identifiers (keywords are identifiers read
// case-insensitively by the parser), numbers, quoted strings and operators.
import { QuerySyntaxError } from './ast.ts';

export type Token =
  | { kind: 'ident'; text: string; at: number }
  | { kind: 'number'; value: number; at: number }
  | { kind: 'string'; value: string; at: number }
  | { kind: 'op'; text: string; at: number }
  | { kind: 'end'; at: number };

const OPERATORS = ['<=', '>=', '!=', '<>', '=', '<', '>', '(', ')', ',', '.', '*', '[', ']'];
const IDENT_START = /[A-Za-z_$]/;
const IDENT_PART = /[A-Za-z0-9_$]/;
const NUMBER = /^-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/;
/** Queries are short; a bound keeps a hostile one from costing much. */
export const MAX_QUERY_LENGTH = 8192;

export function tokenize(source: string): Token[] {
  if (source.length > MAX_QUERY_LENGTH) throw new QuerySyntaxError(`the query is longer than ${MAX_QUERY_LENGTH} characters`);
  const tokens: Token[] = [];
  let i = 0;
  while (i < source.length) {
    const c = source[i]!;
    if (/\s/.test(c)) {
      i++;
      continue;
    }
    if (IDENT_START.test(c)) {
      let j = i + 1;
      while (j < source.length && IDENT_PART.test(source[j]!)) j++;
      tokens.push({ kind: 'ident', text: source.slice(i, j), at: i });
      i = j;
      continue;
    }
    // A minus starts a number only where an operand may stand (after an operator or at the start).
    const previous = tokens.at(-1);
    const operandPosition = previous === undefined || (previous.kind === 'op' && previous.text !== ')' && previous.text !== ']');
    if (/\d/.test(c) || (c === '.' && /\d/.test(source[i + 1] ?? '')) || (c === '-' && operandPosition)) {
      const match = NUMBER.exec(source.slice(i));
      if (!match) throw new QuerySyntaxError(`unexpected '${c}' at position ${i}`);
      tokens.push({ kind: 'number', value: Number(match[0]), at: i });
      i += match[0].length;
      continue;
    }
    if (c === "'" || c === '"') {
      const { value, next } = readString(source, i);
      tokens.push({ kind: 'string', value, at: i });
      i = next;
      continue;
    }
    const op = OPERATORS.find((o) => source.startsWith(o, i));
    if (!op) throw new QuerySyntaxError(`unexpected '${c}' at position ${i}`);
    tokens.push({ kind: 'op', text: op === '<>' ? '!=' : op, at: i });
    i += op.length;
  }
  tokens.push({ kind: 'end', at: source.length });
  return tokens;
}

function readString(source: string, start: number): { value: string; next: number } {
  const quote = source[start]!;
  let value = '';
  let i = start + 1;
  while (i < source.length) {
    const c = source[i]!;
    if (c === '\\' && i + 1 < source.length) {
      const escaped = source[i + 1]!;
      value += escaped === 'n' ? '\n' : escaped === 't' ? '\t' : escaped;
      i += 2;
    } else if (c === quote) {
      return { value, next: i + 1 };
    } else {
      value += c;
      i++;
    }
  }
  throw new QuerySyntaxError(`the string starting at position ${start} is not closed`);
}
