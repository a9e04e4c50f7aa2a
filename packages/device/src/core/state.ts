// The one connection-state vocabulary of Switchyard, for a single device, a gateway identity and
// a gateway connection alike, and the machine that moves a client through it. Every connection
// attempt gets an epoch; what a link reports about an older epoch (a late 'disconnect' from a
// replaced connection, an 'open' that finished after close()) is ignored rather than believed.
import type { SwitchyardError } from '@switchyard/errors';

export const CONNECTION_STATES = ['connecting', 'connected', 'reconnecting', 'disconnected', 'closing', 'closed'] as const;

/**
 * - `connecting`: the first connection attempt is under way.
 * - `connected`: the link is up.
 * - `reconnecting`: the link went down, or its first connection failed (connect() with
 *   waitForConnection: false), and it is being re-opened; operations wait for it (within their deadline).
 * - `disconnected`: the link is down and nothing re-opens it by itself; the next operation may.
 * - `closing` / `closed`: close() was called; nothing re-opens it again.
 */
export type ConnectionState = (typeof CONNECTION_STATES)[number];

/** What the application asked for: a connection, or none. */
export type DesiredState = 'open' | 'closed';

export interface StateChange {
  from: ConnectionState;
  to: ConnectionState;
  /** Why, in words fit for a log line (never a secret). */
  reason: string;
  /** The connection attempt the change belongs to. */
  epoch: number;
  error?: SwitchyardError;
}

const ALLOWED: Record<ConnectionState, readonly ConnectionState[]> = {
  connecting: ['connected', 'disconnected', 'reconnecting', 'closing'],
  connected: ['reconnecting', 'disconnected', 'closing'],
  reconnecting: ['connected', 'disconnected', 'closing'],
  disconnected: ['connecting', 'reconnecting', 'connected', 'closing'],
  closing: ['closed'],
  closed: [],
};

/** Whether the machine may go from `from` to `to`. */
export function canTransition(from: ConnectionState, to: ConnectionState): boolean {
  return ALLOWED[from].includes(to);
}

export class ConnectionStateMachine {
  #current: ConnectionState;
  #desired: DesiredState = 'open';
  #epoch = 0;

  constructor(
    initial: ConnectionState,
    private readonly onChange: (change: StateChange) => void,
  ) {
    this.#current = initial;
  }

  get current(): ConnectionState {
    return this.#current;
  }

  get desired(): DesiredState {
    return this.#desired;
  }

  /** The epoch of the connection attempt in force. */
  get epoch(): number {
    return this.#epoch;
  }

  /** A new connection attempt begins; reports of earlier epochs are stale from now on. */
  nextEpoch(): number {
    return ++this.#epoch;
  }

  /**
   * Moves to `to` if `epoch` is current (or omitted), the application still wants a connection
   * (or `to` is part of closing), and the move is allowed. Returns whether it moved.
   */
  transition(to: ConnectionState, reason: string, options: { epoch?: number; error?: SwitchyardError } = {}): boolean {
    if (options.epoch !== undefined && options.epoch !== this.#epoch) return false;
    if (this.#desired === 'closed' && to !== 'closing' && to !== 'closed') return false;
    const from = this.#current;
    if (from === to || !canTransition(from, to)) return false;
    if (to === 'closing' || to === 'closed') this.#desired = 'closed';
    this.#current = to;
    this.onChange(options.error === undefined ? { from, to, reason, epoch: this.#epoch } : { from, to, reason, epoch: this.#epoch, error: options.error });
    return true;
  }
}
