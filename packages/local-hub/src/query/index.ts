// The device-twin query engine behind POST /devices/query: parse, evaluate, page.
export { QueryNotSupportedError, QuerySyntaxError, type Condition, type TwinQuery } from './ast.ts';
export { parseQuery } from './parse.ts';
export { matches, runQuery, truth } from './evaluate.ts';
export { decodeContinuation, encodeContinuation, pageOf, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './paging.ts';
