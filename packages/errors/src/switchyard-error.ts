import { safeCause } from './safe-cause.ts';

/**
 * The one error taxonomy of Switchyard. Every error a package throws or emits is a
 * SwitchyardError with a stable `code`; messages may be reworded, codes may not.
 */

/** Stable codes, with whether an operation that failed with it is worth retrying as is. */
export const ERROR_CODES = {
  /** A capability profile failed validation; `details.issues` names each field. */
  PROFILE_INVALID: { retryable: false },
  /** No protocol satisfies the profile; `details.rejected` says why each one fell. */
  NO_ELIGIBLE_PROTOCOL: { retryable: false },
  /** A forced protocol (option or SWITCHYARD_PROTOCOL) cannot serve the profile. */
  PROTOCOL_REFUSED: { retryable: false },
  /** An option or argument is invalid; `details.field` names it. */
  CONFIG_INVALID: { retryable: false },
  /** The Azure transport package for the chosen protocol is not installed. */
  TRANSPORT_MISSING: { retryable: false },
  /** The connected protocol cannot serve the feature that was called. */
  FEATURE_UNSUPPORTED: { retryable: false },
  /** The hub refused the credentials. Never a reason to fall back to another protocol. */
  AUTH_FAILED: { retryable: false },
  /** The hub could not be reached: refused, reset, timed out, blocked port. */
  CONNECT_FAILED: { retryable: true },
  /** An operation was attempted while no connection is open. */
  NOT_CONNECTED: { retryable: true },
  /** An operation did not complete in time. */
  TIMEOUT: { retryable: true },
  /** The caller aborted the operation through its AbortSignal. */
  ABORTED: { retryable: false },
  /** The hub throttled the request (429). Back off before retrying. */
  THROTTLED: { retryable: true },
  /** A hub quota was exceeded, e.g. 403004 (a device's C2D queue is full). */
  QUOTA_EXCEEDED: { retryable: false },
  /** A message is larger than IoT Hub accepts. */
  MESSAGE_TOO_LARGE: { retryable: false },
  /** The device (or another addressed entity) does not exist on the hub. */
  DEVICE_NOT_FOUND: { retryable: false },
  /** A C2D message's lock expired or was already settled (412002). */
  LOCK_LOST: { retryable: false },
  /** A C2D poll was asked for before the poll floor allows it. */
  POLL_TOO_SOON: { retryable: true },
  /** The hub refused an operation as not allowed for this caller or state. */
  FORBIDDEN: { retryable: false },
  /** A device did not answer a direct method in time, or is not connected for methods. */
  METHOD_FAILED: { retryable: false },
  /** Local state (state directory, certificates, store) cannot be read or written. */
  STATE_FAILED: { retryable: false },
  /** A bug or an unexpected condition; the cause says more. */
  INTERNAL: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export type ErrorDetails = Record<string, unknown>;

// A symbol from the global registry, so that the check survives two copies of this package
// in one process (pnpm can install several), where `instanceof` would not.
const brand = Symbol.for('switchyard.error');

export class SwitchyardError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, options: { cause?: unknown; details?: ErrorDetails; retryable?: boolean } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: safeCause(options.cause, isSwitchyardError) });
    this.name = 'SwitchyardError';
    this.code = code;
    this.retryable = options.retryable ?? ERROR_CODES[code].retryable;
    this.details = options.details ?? {};
    Object.defineProperty(this, brand, { value: true });
  }

  static [Symbol.hasInstance](value: unknown): boolean {
    return isSwitchyardError(value);
  }

  /** A plain object fit for JSON output (`{"error": err.toJSON()}`); never contains secrets. */
  toJSON(): { code: ErrorCode; message: string; retryable: boolean } & ErrorDetails {
    return { code: this.code, message: this.message, retryable: this.retryable, ...this.details };
  }
}

export function isSwitchyardError(value: unknown, code?: ErrorCode): value is SwitchyardError {
  return (
    typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[brand] === true &&
    (code === undefined || (value as SwitchyardError).code === code)
  );
}
