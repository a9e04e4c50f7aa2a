// The refusals the window faults answer with. Each is a HubError, so every front-end maps it to
// its wire form the way it maps the core's own errors (AMQP condition, HTTP status and body;
// MQTT, which has no negative PUBACK, drops the connection).
import { HubError, type HubErrorKind } from '../core/errors.ts';
import type { WindowFault } from './vocabulary.ts';

interface Codes {
  /** IoT Hub's error name, as in `ErrorCode:<name>` of the REST body. */
  name: string;
  errorCode: number;
  httpStatus: number;
  amqpCondition: string;
}

/**
 * IoT Hub's quota and availability errors have no kind in the core's table (the core never
 * raises them), so these carry their own codes; `kind` is the nearest core kind, for callers that
 * switch on it.
 */
export class FaultError extends HubError {
  readonly #codes: Codes;
  constructor(kind: HubErrorKind, codes: Codes, message: string) {
    super(kind, message);
    this.name = 'HubError';
    this.#codes = codes;
  }
  override get errorCode(): number { return this.#codes.errorCode; }
  override get httpStatus(): number { return this.#codes.httpStatus; }
  override get amqpCondition(): string { return this.#codes.amqpCondition; }
  override toBody(): { Message: string; ExceptionMessage: string; errorCode: number } {
    return { Message: `ErrorCode:${this.#codes.name};${this.message}`, ExceptionMessage: this.message, errorCode: this.#codes.errorCode };
  }
}

/** What a device's telemetry is refused with while a window fault is active. */
export function windowFaultError(type: WindowFault, until: number): HubError {
  const suffix = `(fault injected by ${type} until ${new Date(until).toISOString()})`;
  switch (type) {
    case 'InvokeThrottling':
      // azure-iot-amqp-base: com.microsoft:device-container-throttled → ThrottlingError.
      return new HubError('Throttled', `The device is throttled ${suffix}.`);
    case 'InvokeAuthError':
      return new HubError('Unauthorized', `The device's credentials were refused ${suffix}.`);
    case 'InvokeMaxMessageQuota':
      // amqp:resource-limit-exceeded and HTTP 403 both become IotHubQuotaExceededError in the SDK.
      return new FaultError('Forbidden', { name: 'IotHubQuotaExceeded', errorCode: 403002, httpStatus: 403, amqpCondition: 'amqp:resource-limit-exceeded' }, `The hub's daily message quota is exhausted ${suffix}.`);
    case 'InvokeServiceUnavailable':
      // com.microsoft:timeout and HTTP 503 both become ServiceUnavailableError, which the SDK retries.
      return new FaultError('GatewayTimeout', { name: 'ServiceUnavailable', errorCode: 503000, httpStatus: 503, amqpCondition: 'com.microsoft:timeout' }, `The service is unavailable ${suffix}.`);
  }
}
