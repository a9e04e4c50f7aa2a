// A recursive-descent parser for the IoT Hub query subset people use on device twins:
//   SELECT [TOP n] * | COUNT() [AS a] | path [AS a], … FROM devices [WHERE condition]
// with =, != (<>), <, >, <=, >=, AND, OR, NOT, parentheses, IS_DEFINED(path) and string, number,
// boolean and null literals. What IoT Hub has beyond that (GROUP BY, IN, other functions,
// devices.modules, devices.jobs) is refused as not supported rather than misread.
import { QueryNotSupportedError, QuerySyntaxError, type ComparisonOperator, type Condition, type Operand, type Path, type Projection, type TwinQuery } from './ast.ts';
import { tokenize, type Token } from './lexer.ts';

const COMPARISONS = new Set(['=', '!=', '<', '>', '<=', '>=']);
const KEYWORDS = new Set(['SELECT', 'FROM', 'WHERE', 'AND', 'OR', 'NOT', 'AS', 'TOP', 'GROUP', 'BY', 'IN', 'NIN', 'ORDER']);
/** IoT Hub functions the local hub does not evaluate: named in the refusal instead of a syntax error. */
const KNOWN_FUNCTIONS = new Set([
  'IS_ARRAY', 'IS_BOOL', 'IS_NULL', 'IS_NUMBER', 'IS_OBJECT', 'IS_PRIMITIVE', 'IS_STRING',
  'STARTSWITH', 'ENDSWITH', 'CONTAINS', 'LOWER', 'UPPER', 'LENGTH', 'CONCAT', 'ABS', 'CEILING', 'FLOOR',
  'ROUND', 'TRUNC', 'SQUARE', 'SQRT', 'ARRAY_CONTAINS', 'ARRAY_LENGTH', 'SUBSTRING', 'INDEX_OF',
]);
/** Nesting bound, so a hostile query cannot exhaust the stack. */
const MAX_DEPTH = 64;
const MAX_TOP = 1_000_000;

export function parseQuery(source: string): TwinQuery {
  return new Parser(tokenize(source)).query();
}

class Parser {
  #i = 0;
  #depth = 0;
  constructor(private readonly tokens: Token[]) {}

  query(): TwinQuery {
    this.#keyword('SELECT');
    let top: number | undefined;
    if (this.#isKeyword('TOP')) {
      this.#next();
      const n = this.#next();
      if (n.kind !== 'number' || !Number.isInteger(n.value) || n.value < 1 || n.value > MAX_TOP) throw this.#error(n, `TOP needs a whole number from 1 to ${MAX_TOP}`);
      top = n.value;
    }
    const select = this.#projection();
    this.#keyword('FROM');
    this.#source();
    let where: Condition | undefined;
    if (this.#isKeyword('WHERE')) {
      this.#next();
      where = this.#or();
    }
    if (this.#isKeyword('GROUP')) throw new QueryNotSupportedError('GROUP BY');
    if (this.#isKeyword('ORDER')) throw new QueryNotSupportedError('ORDER BY');
    const end = this.#peek();
    if (end.kind !== 'end') throw this.#error(end, 'expected the end of the query');
    return { select, from: 'devices', ...(top === undefined ? {} : { top }), ...(where === undefined ? {} : { where }) };
  }

  #projection(): Projection {
    if (this.#isOp('*')) {
      this.#next();
      return { kind: 'all' };
    }
    if (this.#isIdent('COUNT')) {
      this.#next();
      this.#op('(');
      this.#op(')');
      return { kind: 'count', alias: this.#alias() ?? '$1' };
    }
    const fields: Array<{ path: Path; alias: string }> = [];
    do {
      if (fields.length > 0) this.#next();
      const start = this.#peek();
      if (start.kind === 'ident' && this.tokens[this.#i + 1]?.kind === 'op' && (this.tokens[this.#i + 1] as { text: string }).text === '(') {
        throw new QueryNotSupportedError(`${start.text.toUpperCase()}() in SELECT`);
      }
      const path = this.#path();
      fields.push({ path, alias: this.#alias() ?? path.segments.at(-1)! });
    } while (this.#isOp(','));
    return { kind: 'fields', fields };
  }

  #alias(): string | undefined {
    if (!this.#isKeyword('AS')) return undefined;
    this.#next();
    const name = this.#next();
    if (name.kind !== 'ident') throw this.#error(name, 'expected a name after AS');
    return name.text;
  }

  #source(): void {
    const first = this.#next();
    if (first.kind !== 'ident' || first.text.toLowerCase() !== 'devices') throw this.#error(first, "expected 'devices' after FROM");
    if (!this.#isOp('.')) return;
    this.#next();
    const second = this.#next();
    if (second.kind === 'ident' && ['modules', 'jobs'].includes(second.text.toLowerCase())) throw new QueryNotSupportedError(`FROM devices.${second.text.toLowerCase()}`);
    throw this.#error(second, "expected 'devices', 'devices.modules' or 'devices.jobs' after FROM");
  }

  #or(): Condition {
    let left = this.#and();
    while (this.#isKeyword('OR')) {
      this.#next();
      left = { kind: 'or', left, right: this.#and() };
    }
    return left;
  }

  #and(): Condition {
    let left = this.#not();
    while (this.#isKeyword('AND')) {
      this.#next();
      left = { kind: 'and', left, right: this.#not() };
    }
    return left;
  }

  #not(): Condition {
    if (this.#isKeyword('NOT')) {
      this.#next();
      return this.#nested(() => ({ kind: 'not', condition: this.#not() }));
    }
    return this.#primary();
  }

  #primary(): Condition {
    if (this.#isOp('(')) {
      this.#next();
      const inner = this.#nested(() => this.#or());
      this.#op(')');
      return inner;
    }
    const token = this.#peek();
    if (token.kind === 'ident' && this.tokens[this.#i + 1]?.kind === 'op' && (this.tokens[this.#i + 1] as { text: string }).text === '(') {
      const name = token.text.toUpperCase();
      if (name === 'IS_DEFINED') {
        this.#next();
        this.#op('(');
        const path = this.#path();
        this.#op(')');
        return { kind: 'defined', path };
      }
      if (KNOWN_FUNCTIONS.has(name)) throw new QueryNotSupportedError(`the function ${name}`);
      throw this.#error(token, `unknown function ${token.text}`);
    }
    const left = this.#operand();
    if (this.#isKeyword('IN') || this.#isKeyword('NIN')) throw new QueryNotSupportedError(this.#peekText().toUpperCase());
    const op = this.#next();
    if (op.kind !== 'op' || !COMPARISONS.has(op.text)) throw this.#error(op, 'expected a comparison (=, !=, <, >, <=, >=)');
    return { kind: 'compare', op: op.text as ComparisonOperator, left, right: this.#operand() };
  }

  #operand(): Operand {
    const token = this.#peek();
    if (token.kind === 'string' || token.kind === 'number') {
      this.#next();
      return { kind: 'literal', value: token.value };
    }
    if (token.kind === 'ident') {
      const word = token.text.toLowerCase();
      if (word === 'true' || word === 'false' || word === 'null') {
        this.#next();
        return { kind: 'literal', value: word === 'null' ? null : word === 'true' };
      }
      return this.#path();
    }
    if (token.kind === 'op' && token.text === '[') throw new QueryNotSupportedError('array literals');
    throw this.#error(token, 'expected a property path or a literal');
  }

  #path(): Path {
    const segments: string[] = [];
    for (;;) {
      const name = this.#next();
      if (name.kind !== 'ident' || (segments.length === 0 && KEYWORDS.has(name.text.toUpperCase()))) throw this.#error(name, 'expected a property name');
      segments.push(name.text);
      if (this.#isOp('[')) throw new QueryNotSupportedError('indexed property paths ([ ])');
      if (!this.#isOp('.')) return { kind: 'path', segments };
      this.#next();
    }
  }

  #nested<T>(fn: () => T): T {
    if (++this.#depth > MAX_DEPTH) throw new QuerySyntaxError(`the query nests deeper than ${MAX_DEPTH} levels`);
    try {
      return fn();
    } finally {
      this.#depth--;
    }
  }

  #peek(): Token {
    return this.tokens[this.#i]!;
  }

  #peekText(): string {
    const t = this.#peek();
    return t.kind === 'ident' || t.kind === 'op' ? t.text : '';
  }

  #next(): Token {
    const token = this.tokens[this.#i]!;
    if (token.kind !== 'end') this.#i++;
    return token;
  }

  #isIdent(upper: string): boolean {
    const t = this.#peek();
    return t.kind === 'ident' && t.text.toUpperCase() === upper;
  }

  #isKeyword(upper: string): boolean {
    return this.#isIdent(upper);
  }

  #isOp(text: string): boolean {
    const t = this.#peek();
    return t.kind === 'op' && t.text === text;
  }

  #keyword(upper: string): void {
    const t = this.#next();
    if (t.kind !== 'ident' || t.text.toUpperCase() !== upper) throw this.#error(t, `expected ${upper}`);
  }

  #op(text: string): void {
    const t = this.#next();
    if (t.kind !== 'op' || t.text !== text) throw this.#error(t, `expected '${text}'`);
  }

  #error(token: Token, message: string): QuerySyntaxError {
    const found = token.kind === 'end' ? 'the end of the query' : token.kind === 'string' ? `'${token.value}'` : token.kind === 'number' ? String(token.value) : `'${token.text}'`;
    return new QuerySyntaxError(`${message} at position ${token.at}, found ${found}`);
  }
}
