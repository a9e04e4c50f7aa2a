// Deadlines for operations in flight, one timer per distinct timeout (per clock) instead of one
// per operation. Every send carries a deadline and settles in a millisecond: arming and
// cancelling a timer for each one was a measurable part of what the client cost per message over
// the raw SDK (bench/README.md, "Where the CPU went"). Operations that share a timeout expire in
// the order they started, so each list is a FIFO whose one timer only wakes for the oldest entry.
import type { Clock, TimerHandle } from '@switchyard/time';

/** An operation with a deadline; it is its own list node, so arming one allocates nothing. */
export abstract class DeadlineNode {
  deadlinePrev: DeadlineNode | undefined = undefined;
  deadlineNext: DeadlineNode | undefined = undefined;
  deadlineList: DeadlineList | undefined = undefined;
  deadlineAt = 0;

  /** Called once, when the deadline passes before the node was removed. */
  abstract expire(): void;
}

class DeadlineList {
  head: DeadlineNode | undefined = undefined;
  tail: DeadlineNode | undefined = undefined;
  #timer: TimerHandle | undefined = undefined;
  #refed = false;

  constructor(
    readonly timeoutMs: number,
    readonly clock: Clock,
    readonly lists: Map<number, DeadlineList>,
  ) {}

  add(node: DeadlineNode): void {
    node.deadlineAt = this.clock.now() + this.timeoutMs;
    node.deadlineList = this;
    node.deadlinePrev = this.tail;
    node.deadlineNext = undefined;
    if (this.tail === undefined) this.head = node;
    else this.tail.deadlineNext = node;
    this.tail = node;
    // An armed timer wakes no later than this node's deadline (every earlier node's is earlier),
    // so it needs no re-arming, only to hold the process open again: an operation in flight must
    // reach its deadline even if nothing else is pending.
    if (this.#timer === undefined) this.#arm(this.timeoutMs);
    else if (!this.#refed) {
      this.#timer.ref();
      this.#refed = true;
    }
  }

  remove(node: DeadlineNode): void {
    const { deadlinePrev: prev, deadlineNext: next } = node;
    if (prev === undefined) this.head = next;
    else prev.deadlineNext = next;
    if (next === undefined) this.tail = prev;
    else next.deadlinePrev = prev;
    node.deadlinePrev = node.deadlineNext = node.deadlineList = undefined;
    // Left armed, so the next operation does not arm again; it just stops holding the process.
    if (this.head === undefined && this.#refed) {
      this.#timer?.unref();
      this.#refed = false;
    }
  }

  #arm(ms: number): void {
    this.#timer = this.clock.setTimeout(this.#fire, Math.max(1, Math.ceil(ms)));
    this.#refed = true;
  }

  readonly #fire = (): void => {
    this.#timer = undefined;
    this.#refed = false;
    const now = this.clock.now();
    // Bounded: every pass removes the head, and nodes added by expire() are due a full timeout later.
    for (let node = this.head; node !== undefined && node.deadlineAt <= now; node = this.head) {
      this.remove(node);
      node.expire();
    }
    if (this.head !== undefined) this.#arm(this.head.deadlineAt - now);
    else if (this.lists.get(this.timeoutMs) === this) this.lists.delete(this.timeoutMs);
  };
}

const listsByClock = new WeakMap<Clock, Map<number, DeadlineList>>();
// setTimeout's own limit; like setTimeout, a delay outside 1..MAX_DELAY_MS (or NaN) means 1 ms.
const MAX_DELAY_MS = 2_147_483_647;

/** Starts `node`'s deadline on `clock`, `timeoutMs` from now; `node.expire()` runs unless cleared first. */
export function startDeadline(node: DeadlineNode, timeoutMs: number, clock: Clock): void {
  const ms = timeoutMs >= 1 && timeoutMs <= MAX_DELAY_MS ? timeoutMs : 1;
  let lists = listsByClock.get(clock);
  if (lists === undefined) listsByClock.set(clock, (lists = new Map()));
  let list = lists.get(ms);
  if (list === undefined) lists.set(ms, (list = new DeadlineList(ms, clock, lists)));
  list.add(node);
}

/** Cancels `node`'s deadline; harmless when it has none (expired, cleared, or never started). */
export function clearDeadline(node: DeadlineNode): void {
  node.deadlineList?.remove(node);
}
