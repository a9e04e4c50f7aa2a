// Direct methods: a service call goes to the device's newest session with a method receiver and
// waits for the answer, with IoT Hub's connect and response timeouts on the injected clock.
import type { TimerHandle } from '@switchyard/time';
import type { CounterTable } from './counters.ts';
import { HubError } from './errors.ts';
import { LIMITS } from './iothub-limits.ts';
import { describeIdentity, type IdentityLookup } from './identity.ts';
import type { SessionTable } from './sessions.ts';
import type { HubTimers } from './timers.ts';
import type { HubLogger, MethodReceiver, MethodResult } from './types.ts';

export interface MethodRequest {
  methodName: string;
  payload?: unknown;
  responseTimeoutInSeconds?: number;
  connectTimeoutInSeconds?: number;
}

interface PendingMethod {
  deviceId: string;
  resolve(result: MethodResult): void;
  reject(error: Error): void;
  timer: TimerHandle;
}

export interface MethodCallsOptions {
  /** Devices and modules: a module's methods are its own. */
  registry: IdentityLookup;
  sessions: SessionTable;
  counters: CounterTable;
  logger: HubLogger;
  timers: HubTimers;
  isClosed(): boolean;
}

export class MethodCalls {
  readonly #o: MethodCallsOptions;
  readonly #pending = new Map<string, PendingMethod>();
  readonly #waiters = new Map<string, Set<() => void>>();
  #requestSequence = 0;

  constructor(options: MethodCallsOptions) {
    this.#o = options;
  }

  async invoke(deviceId: string, request: MethodRequest): Promise<MethodResult> {
    this.#o.registry.require(deviceId);
    if (typeof request.methodName !== 'string' || request.methodName === '' || request.methodName.length > 100) {
      throw new HubError('ArgumentInvalid', 'methodName must be a non-empty string of at most 100 characters.');
    }
    // IoT Hub's lower bound for the response timeout is 5 s; any positive value is allowed here so
    // tests of the timeout path stay short.
    const responseTimeout = request.responseTimeoutInSeconds ?? LIMITS.methodDefaultResponseTimeoutSeconds;
    const connectTimeout = request.connectTimeoutInSeconds ?? 0;
    if (!(responseTimeout > 0 && responseTimeout <= LIMITS.methodMaxTimeoutSeconds)) {
      throw new HubError('ArgumentInvalid', `responseTimeoutInSeconds must be > 0 and <= ${LIMITS.methodMaxTimeoutSeconds}.`);
    }
    if (!(connectTimeout >= 0 && connectTimeout <= LIMITS.methodMaxTimeoutSeconds)) {
      throw new HubError('ArgumentInvalid', `connectTimeoutInSeconds must be between 0 and ${LIMITS.methodMaxTimeoutSeconds}.`);
    }
    const payload = request.payload ?? null;
    const payloadBytes = Buffer.byteLength(JSON.stringify(payload) ?? 'null');
    if (payloadBytes > LIMITS.methodPayloadBytes) throw new HubError('MessageTooLarge', `The method payload of ${payloadBytes} bytes exceeds ${LIMITS.methodPayloadBytes}.`);
    this.#o.counters.of(deviceId).methodCalls++;

    let receiver = this.#receiver(deviceId);
    if (!receiver && connectTimeout > 0) receiver = await this.#waitForReceiver(deviceId, connectTimeout * 1000);
    if (!receiver) throw new HubError('DeviceNotOnline', `${describeIdentity(deviceId, true)} is not connected with a method subscription.`);

    const requestId = String(++this.#requestSequence);
    const key = `${deviceId}\n${requestId}`;
    const result = new Promise<MethodResult>((resolve, reject) => {
      const timer = this.#o.timers.schedule(responseTimeout * 1000, () => {
        if (!this.#pending.delete(key)) return;
        reject(new HubError('GatewayTimeout', `${describeIdentity(deviceId, true)} did not answer method '${request.methodName}' within ${responseTimeout} s.`));
      });
      this.#pending.set(key, { deviceId, resolve, reject, timer });
    });
    try {
      receiver.invoke({ requestId, methodName: request.methodName, payload });
    } catch (error) {
      const pending = this.#pending.get(key);
      this.#pending.delete(key);
      if (pending) this.#o.timers.clear(pending.timer);
      this.#o.logger.warn('method receiver threw', { deviceId, error: String(error) });
      throw new HubError('DeviceNotOnline', `Device '${deviceId}' could not be reached for method '${request.methodName}'.`);
    }
    return result;
  }

  respond(deviceId: string, requestId: string, result: MethodResult): void {
    const key = `${deviceId}\n${requestId}`;
    const pending = this.#pending.get(key);
    if (!pending) {
      // Late answers (after the timeout) are dropped, as IoT Hub does.
      this.#o.logger.info('method response without a pending request dropped', { deviceId, requestId });
      return;
    }
    this.#pending.delete(key);
    this.#o.timers.clear(pending.timer);
    // IoT Hub caps the response as it caps the request: the caller gets the error, not the payload.
    const bytes = result.payload === undefined ? 0 : Buffer.byteLength(JSON.stringify(result.payload) ?? '');
    if (bytes > LIMITS.methodPayloadBytes) {
      pending.reject(new HubError('MessageTooLarge', `The response of device '${deviceId}' to method request ${requestId} is ${bytes} bytes, over IoT Hub's limit of ${LIMITS.methodPayloadBytes}.`));
      return;
    }
    pending.resolve({ status: result.status, payload: result.payload });
  }

  receiverReady(deviceId: string): void {
    for (const waiter of [...(this.#waiters.get(deviceId) ?? [])]) waiter();
  }

  /** Fails every pending call and wakes every waiter (which then finds no receiver). */
  close(): void {
    for (const [key, pending] of [...this.#pending]) {
      this.#pending.delete(key);
      this.#o.timers.clear(pending.timer);
      pending.reject(new HubError('DeviceNotOnline', `The hub closed before device '${pending.deviceId}' answered.`));
    }
    for (const waiters of [...this.#waiters.values()]) for (const waiter of [...waiters]) waiter();
  }

  #receiver(deviceId: string): MethodReceiver | undefined {
    return this.#o.sessions.of(deviceId).reverse().find((s) => !s.closed && s.method)?.method;
  }

  #waitForReceiver(deviceId: string, ms: number): Promise<MethodReceiver | undefined> {
    return new Promise((resolve) => {
      const waiters = this.#waiters.get(deviceId) ?? new Set<() => void>();
      this.#waiters.set(deviceId, waiters);
      const done = (): void => {
        waiters.delete(done);
        if (waiters.size === 0) this.#waiters.delete(deviceId);
        this.#o.timers.clear(timer);
        resolve(this.#o.isClosed() ? undefined : this.#receiver(deviceId));
      };
      const timer = this.#o.timers.schedule(ms, done);
      waiters.add(done);
    });
  }
}

