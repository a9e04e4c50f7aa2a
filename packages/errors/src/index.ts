export { SwitchyardError, isSwitchyardError, type ErrorCode, type ErrorDetails, ERROR_CODES } from './switchyard-error.ts';
export { redactSecrets } from './redact.ts';
