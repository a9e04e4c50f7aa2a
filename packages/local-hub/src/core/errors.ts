// IoT Hub's numeric error codes, which each front-end maps to its own wire form
// (MQTT: CONNACK code or disconnect; AMQP: condition; HTTP: status + JSON body).
export type HubErrorKind =
  | 'Unauthorized' // 401003
  | 'DeviceNotFound' // 404001
  | 'DeviceMaximumQueueDepthExceeded' // 403004
  | 'MessageTooLarge' // 413002
  | 'DeviceMessageLockLost' // 412002
  | 'DeviceNotOnline' // 404103
  | 'GatewayTimeout' // 504101
  | 'ArgumentInvalid' // 400004
  | 'Throttled' // 429001
  | 'Forbidden' // 403xxx
  | 'PreconditionFailed' // 412001
  | 'DeviceAlreadyExists' // 409001
  | 'ModuleNotFound' // 404010
  | 'ModuleAlreadyExistsOnDevice'; // 409301

export const HUB_ERROR_CODES: Record<HubErrorKind, { errorCode: number; httpStatus: number; amqpCondition: string }> = {
  Unauthorized: { errorCode: 401003, httpStatus: 401, amqpCondition: 'amqp:unauthorized-access' },
  DeviceNotFound: { errorCode: 404001, httpStatus: 404, amqpCondition: 'amqp:not-found' },
  DeviceMaximumQueueDepthExceeded: { errorCode: 403004, httpStatus: 403, amqpCondition: 'amqp:resource-limit-exceeded' },
  MessageTooLarge: { errorCode: 413002, httpStatus: 413, amqpCondition: 'amqp:link:message-size-exceeded' },
  DeviceMessageLockLost: { errorCode: 412002, httpStatus: 412, amqpCondition: 'com.microsoft:message-lock-lost' },
  DeviceNotOnline: { errorCode: 404103, httpStatus: 404, amqpCondition: 'amqp:not-found' },
  GatewayTimeout: { errorCode: 504101, httpStatus: 504, amqpCondition: 'com.microsoft:timeout' },
  ArgumentInvalid: { errorCode: 400004, httpStatus: 400, amqpCondition: 'com.microsoft:argument-error' },
  Throttled: { errorCode: 429001, httpStatus: 429, amqpCondition: 'com.microsoft:device-container-throttled' },
  Forbidden: { errorCode: 403002, httpStatus: 403, amqpCondition: 'amqp:not-allowed' },
  PreconditionFailed: { errorCode: 412001, httpStatus: 412, amqpCondition: 'com.microsoft:precondition-failed' },
  DeviceAlreadyExists: { errorCode: 409001, httpStatus: 409, amqpCondition: 'com.microsoft:device-already-exists' },
  ModuleNotFound: { errorCode: 404010, httpStatus: 404, amqpCondition: 'amqp:not-found' },
  ModuleAlreadyExistsOnDevice: { errorCode: 409301, httpStatus: 409, amqpCondition: 'com.microsoft:module-already-exists-on-device' },
};

export class HubError extends Error {
  readonly kind: HubErrorKind;
  constructor(kind: HubErrorKind, message: string) {
    super(message);
    this.name = 'HubError';
    this.kind = kind;
  }
  get errorCode(): number { return HUB_ERROR_CODES[this.kind].errorCode; }
  get httpStatus(): number { return HUB_ERROR_CODES[this.kind].httpStatus; }
  get amqpCondition(): string { return HUB_ERROR_CODES[this.kind].amqpCondition; }
  /** IoT Hub's REST error body shape. */
  toBody(): { Message: string; ExceptionMessage: string; errorCode: number } {
    return { Message: `ErrorCode:${this.kind};${this.message}`, ExceptionMessage: this.message, errorCode: this.errorCode };
  }
}
