// One operation under a deadline and an abort signal, on the core's clock. A class with
// prototype methods rather than closures because every send goes through one: the deadline list
// and the signal call back into it, and it is its own deadline node, so arming the deadline
// allocates nothing. It also knows whether it ever reached the link, which is what a TIMEOUT has
// to tell the caller: a message that never left cannot be at the hub ('no'); one that did may be
// ('unknown'), and a retry then duplicates it unless the hub de-duplicates by message id.
import { SwitchyardError } from '@switchyard/errors';
import type { Protocol } from '@switchyard/profile';
import type { Clock } from '@switchyard/time';
import { translateError } from '../errors.ts';
import { clearDeadline, DeadlineNode, startDeadline } from './deadlines.ts';

/** Whether a failed operation's effect may have reached the hub. */
export type Delivered = 'no' | 'unknown';

/** What an operation needs from the client that runs it. */
export interface OperationHost {
  readonly protocol: Protocol;
  readonly clock: Clock;
  /** The gateway's identity, named in errors; undefined for a single device. */
  readonly identity: string | undefined;
  /** Called after a deadline of `timeoutMs` rejected an operation that had reached the link. */
  operationTimedOut(operation: string, epoch: number, timeoutMs: number): void;
}

export function abortedError(signal: AbortSignal, what: string): SwitchyardError {
  const reason: unknown = signal.reason;
  return new SwitchyardError('ABORTED', `${what} was aborted${reason instanceof Error && reason.name !== 'AbortError' ? `: ${reason.message}` : ''}`, {
    cause: reason,
    details: { operation: what },
  });
}

export class Operation<T> extends DeadlineNode {
  #done = false;
  /** Set when the operation is handed to the link; from then on the hub may have seen it. */
  handedOver = false;
  /** The link's epoch when it was handed over, so a timeout recycles only that connection. */
  epoch = 0;

  constructor(
    readonly host: OperationHost,
    readonly what: string,
    readonly timeoutMs: number,
    readonly signal: AbortSignal | undefined,
    readonly resolve: (value: T) => void,
    readonly reject: (error: unknown) => void,
    readonly messageId?: string,
  ) {
    super();
    startDeadline(this, timeoutMs, host.clock);
    signal?.addEventListener('abort', this, { once: true });
  }

  get settled(): boolean {
    return this.#done;
  }

  expire(): void {
    if (!this.#finish()) return;
    const { host, what, timeoutMs } = this;
    const delivered: Delivered = this.handedOver ? 'unknown' : 'no';
    const details: Record<string, unknown> = { protocol: host.protocol, operation: what, timeoutMs, delivered };
    if (this.messageId !== undefined) details.messageId = this.messageId;
    if (host.identity !== undefined) details.deviceId = host.identity;
    const said =
      delivered === 'no'
        ? 'it never left the device (the connection was down), so it is not at the hub; retrying it is safe'
        : this.messageId === undefined
          ? 'it was sent, so the hub may have it; a retry may duplicate it (give messages a messageId to de-duplicate on)'
          : `it was sent, so the hub may have it; a retry may duplicate it (de-duplicate on messageId ${this.messageId})`;
    const who = host.identity === undefined ? '' : `identity ${host.identity}: `;
    this.reject(new SwitchyardError('TIMEOUT', `${who}${host.protocol} ${what} did not complete within ${timeoutMs} ms: ${said}`, { details }));
    if (this.handedOver) host.operationTimedOut(what, this.epoch, timeoutMs);
  }

  /** The abort listener (EventTarget calls handleEvent on an object listener). */
  handleEvent(): void {
    if (this.#finish()) this.reject(abortedError(this.signal!, this.what));
  }

  succeeded(value: T): void {
    if (this.#finish()) this.resolve(value);
  }

  failed(err: unknown): void {
    if (!this.#finish()) return;
    const context = this.host.identity === undefined ? { protocol: this.host.protocol, operation: this.what } : { protocol: this.host.protocol, operation: this.what, identity: this.host.identity };
    this.reject(translateError(err, context));
  }

  /** Rejects an operation the core refuses to start (closed client, give-up); it never left. */
  refused(error: SwitchyardError): void {
    if (this.#finish()) this.reject(error);
  }

  /** The Node-style callback handed to a link's send. */
  readonly done = (err?: unknown): void => {
    if (err) this.failed(err);
    else this.succeeded(undefined as T);
  };

  #finish(): boolean {
    if (this.#done) return false;
    this.#done = true;
    clearDeadline(this);
    this.signal?.removeEventListener('abort', this);
    return true;
  }
}
