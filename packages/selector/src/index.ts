export { PROTOCOL_PORTS, type Decision, type Rejection, type RuleFinding } from './decision.ts';
export { select, WIRE_BYTES_PER_SMALL_MESSAGE, type SelectOptions } from './select.ts';
export { RULE_IDS, type RuleId } from './rules.ts';
export { explainTable } from './table.ts';
