// A deadline and an abort signal around one operation that runs outside a client, such as
// connect()'s setOptions and open: the same Operation, deadlines and errors as a client's own.
import type { Protocol } from '@switchyard/profile';
import { systemClock, type Clock } from '@switchyard/time';
import { abortedError, Operation, type OperationHost } from './operation.ts';
import type { OperationOptions } from '../types.ts';

export interface GuardOptions extends OperationOptions {
  /** Used when `timeoutMs` is not given. */
  defaultTimeoutMs: number;
  clock?: Clock;
}

/** Runs `run` under a deadline and an abort signal; failures come back translated. */
export function guard<T>(protocol: Protocol, what: string, run: () => Promise<T>, options: GuardOptions): Promise<T> {
  const { signal } = options;
  if (signal?.aborted === true) return Promise.reject(abortedError(signal, what));
  const host: OperationHost = { protocol, clock: options.clock ?? systemClock, identity: undefined, operationTimedOut: () => undefined };
  return new Promise<T>((resolve, reject) => {
    const operation = new Operation<T>(host, what, options.timeoutMs ?? options.defaultTimeoutMs, signal, resolve, reject);
    operation.handedOver = true;
    let started: Promise<T>;
    try {
      started = run();
    } catch (err) {
      operation.failed(err);
      return;
    }
    started.then(
      (value) => operation.succeeded(value),
      (err: unknown) => operation.failed(err),
    );
  });
}
