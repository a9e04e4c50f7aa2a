// The single place where Azure SDK errors, Node system errors and abort reasons become
// SwitchyardErrors. Classification is by error *name* and code, never instanceof, because the
// SDK's error classes may come from another copy of azure-iot-common.
import { SwitchyardError, isSwitchyardError, redactSecrets, type ErrorCode } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';

export interface ErrorContext {
  protocol?: Protocol;
  /** What was being done: 'connect', 'sendEvent', 'getTwin'... */
  operation?: string;
  /**
   * The identity, when one process speaks for many (a gateway): the message starts with
   * "identity <id>: " and `details.deviceId` names it.
   */
  identity?: string;
}

/** Why a connect failed, as far as the error lets us tell; only 'network' may fall back. */
export type FailureKind = 'network' | 'tls' | 'auth' | 'other';

const NETWORK_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'EPIPE', 'ECONNABORTED', 'EADDRNOTAVAIL']);
const NETWORK_TEXT = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EAI_AGAIN|socket hang up|connack timeout|connection timed out|connect timeout|premature close|connection disconnected|unexpected server response|unable to establish a connection/i;
const TLS_TEXT = /certificate|self[- ]signed|altnames|CERT_|SSL routines|tls/i;

const NAME_TO_CODE: Record<string, ErrorCode> = {
  UnauthorizedError: 'AUTH_FAILED',
  ThrottlingError: 'THROTTLED',
  IotHubQuotaExceededError: 'QUOTA_EXCEEDED',
  DeviceMaximumQueueDepthExceededError: 'QUOTA_EXCEEDED',
  MessageTooLargeError: 'MESSAGE_TOO_LARGE',
  DeviceNotFoundError: 'DEVICE_NOT_FOUND',
  IotHubNotFoundError: 'DEVICE_NOT_FOUND',
  DeviceMessageLockLostError: 'LOCK_LOST',
  NotImplementedError: 'FEATURE_UNSUPPORTED',
  TimeoutError: 'TIMEOUT',
  DeviceTimeoutError: 'TIMEOUT',
  GatewayTimeoutError: 'TIMEOUT',
  NotConnectedError: 'NOT_CONNECTED',
  ServiceUnavailableError: 'CONNECT_FAILED',
  InternalServerError: 'INTERNAL',
  InvalidOperationError: 'FORBIDDEN',
  IoTHubSuspendedError: 'FORBIDDEN',
  ArgumentError: 'CONFIG_INVALID',
  ArgumentOutOfRangeError: 'CONFIG_INVALID',
  FormatError: 'CONFIG_INVALID',
  OperationCancelledError: 'ABORTED',
  AbortError: 'ABORTED',
  CloudToDeviceDetachedError: 'NOT_CONNECTED',
  DeviceMethodsDetachedError: 'NOT_CONNECTED',
  TwinDetachedError: 'NOT_CONNECTED',
  TwinRequestError: 'INTERNAL',
  PreconditionFailedError: 'LOCK_LOST',
  BlobSasError: 'INTERNAL',
  BlobUploadNotificationError: 'INTERNAL',
};

// Errors the hub may recover from on its own; the SDK's DefaultErrorFilter agrees on these.
const RETRYABLE_NAMES = new Set(['NotConnectedError', 'InternalServerError', 'ServiceUnavailableError', 'ThrottlingError', 'TimeoutError']);

const HTTP_STATUS_TO_CODE: Record<number, ErrorCode> = {
  400: 'CONFIG_INVALID',
  401: 'AUTH_FAILED',
  403: 'QUOTA_EXCEEDED',
  404: 'DEVICE_NOT_FOUND',
  412: 'LOCK_LOST',
  413: 'MESSAGE_TOO_LARGE',
  429: 'THROTTLED',
  500: 'INTERNAL',
  503: 'CONNECT_FAILED',
  504: 'TIMEOUT',
};

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/** The text of an error and of its inner errors, where the SDK hides the real reason. */
function fullText(err: unknown): string {
  const parts: string[] = [];
  let current: unknown = err;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const message = field(current, 'message');
    parts.push(typeof message === 'string' ? message : typeof current === 'string' ? current : '');
    const code = field(current, 'code');
    if (typeof code === 'string') parts.push(code);
    current = field(current, 'innerError') ?? field(current, 'cause') ?? field(current, 'transportError');
  }
  return parts.join(' | ');
}

/** The socket-level reason in an SDK error's chain, e.g. "connect ECONNREFUSED 127.0.0.1:8883". */
function networkReason(err: unknown): string | undefined {
  const text = fullText(err);
  const system = /\b(?:connect|getaddrinfo|read|write|socket)\s+E[A-Z_]+(?:\s+[\w.:[\]-]+)?/.exec(text);
  return redactSecrets(system?.[0] ?? NETWORK_TEXT.exec(text)?.[0] ?? '') || undefined;
}

/** The HTTP status a transport error carries, if any (Http transport puts it on `.response`). */
export function httpStatusOf(err: unknown): number | undefined {
  const status = field(field(err, 'response'), 'statusCode') ?? field(err, 'statusCode');
  return typeof status === 'number' ? status : undefined;
}

/**
 * Tells network failures (fallback may help) from TLS and credential failures (it cannot). The
 * MQTT transport reports every first-connect failure as UnauthorizedError, so the name alone is
 * not enough: the socket error code survives only in the message text.
 */
export function classifyFailure(err: unknown): FailureKind {
  const code = field(err, 'code');
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return 'network';
  const text = fullText(err);
  if (NETWORK_TEXT.test(text)) return 'network';
  if (TLS_TEXT.test(text)) return 'tls';
  const name = field(err, 'name');
  if (name === 'UnauthorizedError' || httpStatusOf(err) === 401) return 'auth';
  // AMQP loses the socket reason and reports a bare NotConnectedError when nothing answered.
  if (name === 'NotConnectedError') return 'network';
  if (name === 'TimeoutError' || name === 'ServiceUnavailableError') return 'network';
  return 'other';
}

/**
 * Maps anything thrown or emitted by the Azure SDK (or by Node, or an AbortSignal) to a
 * SwitchyardError with a stable code. Messages pass through redactSecrets, because SDK errors
 * can quote connection strings and SAS tokens.
 */
export function translateError(err: unknown, context: ErrorContext = {}): SwitchyardError {
  if (isSwitchyardError(err)) return err;
  if (context.identity !== undefined) {
    const { identity, ...rest } = context;
    const translated = translateError(err, rest);
    return new SwitchyardError(translated.code, `identity ${identity}: ${translated.message}`, {
      cause: translated.cause,
      details: { ...translated.details, deviceId: identity },
      retryable: translated.retryable,
    });
  }
  const where = [context.protocol, context.operation].filter((p) => p !== undefined).join(' ');
  const prefix = where === '' ? '' : `${where}: `;
  const name = field(err, 'name');
  const rawMessage = field(err, 'message');
  const message = redactSecrets(typeof rawMessage === 'string' && rawMessage !== '' ? rawMessage : String(err));
  const details: Record<string, unknown> = {};
  if (context.protocol !== undefined) details.protocol = context.protocol;
  if (context.operation !== undefined) details.operation = context.operation;
  if (typeof name === 'string') details.azureError = name;

  const kind = classifyFailure(err);
  const status = httpStatusOf(err);
  if (status !== undefined) details.status = status;

  let code: ErrorCode | undefined;
  if (typeof name === 'string' && name in NAME_TO_CODE) code = NAME_TO_CODE[name];
  if (status !== undefined && HTTP_STATUS_TO_CODE[status] !== undefined && (code === undefined || name === 'Error')) code = HTTP_STATUS_TO_CODE[status];
  const connecting = context.operation === 'connect';
  if (code === undefined || code === 'AUTH_FAILED' || code === 'NOT_CONNECTED') {
    // The MQTT first-connect UnauthorizedError and AMQP's NotConnectedError hide socket errors.
    if (kind === 'network') code = connecting ? 'CONNECT_FAILED' : code === 'AUTH_FAILED' || code === undefined ? 'CONNECT_FAILED' : code;
    else if (kind === 'tls') code = 'CONNECT_FAILED';
  }
  if (code === undefined) code = connecting ? 'CONNECT_FAILED' : 'INTERNAL';
  details.failure = kind;

  const retryable = code === 'AUTH_FAILED' || kind === 'tls' ? false : (typeof name === 'string' && RETRYABLE_NAMES.has(name)) || kind === 'network' || undefined;
  const hint = kind === 'tls' ? ' (TLS verification failed: pass the hub CA as `ca`)' : '';
  // The SDK's own words for a network failure mislead ("Failure on first connection (Not
  // authorized)", "rhea: connection disconnected"): say what happened; the cause keeps theirs.
  // Only where the hub was in fact not reached: a link the hub detached mid-connection is also
  // a ServiceUnavailableError, and saying "could not reach the hub" of it sends users to the wrong place.
  const unreached = code === 'CONNECT_FAILED' && kind === 'network' && (connecting || networkReason(err) !== undefined);
  const said = unreached
    ? `could not reach the hub (${networkReason(err) ?? 'no answer'}): a network failure, not a credentials one; check the host, the port and that the network lets this protocol out`
    : message;
  return new SwitchyardError(code, `${prefix}${said}${hint}`, {
    cause: err,
    details,
    ...(retryable === undefined ? {} : { retryable }),
  });
}

const UNREACHED_CODES = /\b(ECONNREFUSED|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH|EADDRNOTAVAIL)\b/;

/**
 * Whether a request that failed with `err` surely never reached the hub: the connection was
 * refused, had no route or name, or TLS failed before any request was sent. A timeout or a reset
 * is not such a proof: the hub may have seen the request.
 */
export function neverReachedHub(err: unknown): boolean {
  const kind = classifyFailure(err);
  return kind === 'tls' || (kind === 'network' && UNREACHED_CODES.test(fullText(err)));
}

/**
 * Whether an operation that failed with `err` is worth trying again unchanged: the taxonomy's
 * `retryable`, decided once in translateError, never by a list of SDK class names elsewhere.
 */
export function isRetryable(err: unknown): boolean {
  return translateError(err).retryable;
}

/** The error for a feature the connected protocol cannot serve; never the SDK's NotImplementedError. */
export function featureUnsupported(protocol: Protocol, feature: string): SwitchyardError {
  return new SwitchyardError('FEATURE_UNSUPPORTED', `${feature} is not available over ${protocol}; declare "${feature}" in the profile's features so the selector picks a protocol that serves it`, {
    details: { protocol, feature },
  });
}
