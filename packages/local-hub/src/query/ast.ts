// The parsed form of the IoT Hub query subset the local hub answers, and its two errors: a
// query that is not valid (400) and one IoT Hub would answer that the local hub does not (501).

export type Literal = { kind: 'literal'; value: string | number | boolean | null };
export type Path = { kind: 'path'; segments: string[] };
export type Operand = Literal | Path;
export type ComparisonOperator = '=' | '!=' | '<' | '>' | '<=' | '>=';

export type Condition =
  | { kind: 'compare'; op: ComparisonOperator; left: Operand; right: Operand }
  | { kind: 'and' | 'or'; left: Condition; right: Condition }
  | { kind: 'not'; condition: Condition }
  | { kind: 'defined'; path: Path };

export type Projection =
  | { kind: 'all' }
  | { kind: 'count'; alias: string }
  | { kind: 'fields'; fields: Array<{ path: Path; alias: string }> };

export interface TwinQuery {
  select: Projection;
  /** `TOP n`: at most n results in all. */
  top?: number;
  /** Only `devices` today; `devices.modules` and `devices.jobs` are refused as not implemented. */
  from: 'devices';
  where?: Condition;
}

/** The query is not valid IoT Hub query language (IoT Hub answers 400). */
export class QuerySyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'QuerySyntaxError';
  }
}

/** Valid IoT Hub query language that the local hub does not evaluate (answered 501). */
export class QueryNotSupportedError extends Error {
  constructor(readonly feature: string) {
    super(`${feature} is not supported by the local hub's query engine`);
    this.name = 'QueryNotSupportedError';
  }
}
