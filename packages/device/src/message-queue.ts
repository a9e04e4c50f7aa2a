// Received messages waiting for a `for await` reader. One queue per messages() call, so two
// readers each see every message, and a reader that stops does not lose anyone else's.

export class MessageQueue<M> {
  readonly items: M[] = [];
  readonly waiters: Array<(r: IteratorResult<M>) => void> = [];
  ended = false;

  push(item: M): void {
    const waiter = this.waiters.shift();
    if (waiter !== undefined) waiter({ value: item, done: false });
    else this.items.push(item);
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w({ value: undefined, done: true });
  }
}

/**
 * An iterator over a new queue registered in `queues` until the reader stops (return(), the
 * signal aborts, or the owner ends every queue on close). `closed` ends it at once.
 */
export function queueIterator<M>(queues: Set<MessageQueue<M>>, options: { signal?: AbortSignal; closed: boolean }): AsyncIterableIterator<M> {
  const queue = new MessageQueue<M>();
  queues.add(queue);
  const stop = (): void => {
    queues.delete(queue);
    queue.end();
  };
  if (options.closed) queue.end();
  options.signal?.addEventListener('abort', stop, { once: true });
  const iterator: AsyncIterableIterator<M> = {
    next: () => {
      const item = queue.items.shift();
      if (item !== undefined) return Promise.resolve({ value: item, done: false });
      if (queue.ended || options.signal?.aborted) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => queue.waiters.push(resolve));
    },
    return: () => {
      stop();
      return Promise.resolve({ value: undefined, done: true });
    },
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
