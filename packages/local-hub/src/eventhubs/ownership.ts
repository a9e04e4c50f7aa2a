// Who may read a partition of a consumer group: Event Hubs' epoch (owner level) rules. A reader
// with an owner level takes the partition from readers with a lower or equal one and from those
// without; while one holds it, readers without an owner level are refused; at most five readers
// without an owner level share a partition. Pure bookkeeping; the caller detaches the evicted.

export const STOLEN = 'amqp:link:stolen';
export const LIMIT_EXCEEDED = 'amqp:resource-limit-exceeded';
/** Event Hubs' limit of concurrent readers per partition and consumer group. */
export const MAX_READERS_PER_PARTITION = 5;

export type ClaimResult<L> =
  | { ok: true; evicted: Array<{ link: L; description: string }> }
  | { ok: false; condition: string; description: string };

export class PartitionOwnership<L> {
  readonly #readers = new Map<string, Map<L, number | undefined>>();

  /** `scope` names consumer group and partition; `epoch` is the owner level, if the reader sent one. */
  claim(scope: string, link: L, epoch: number | undefined): ClaimResult<L> {
    const readers = this.#readers.get(scope) ?? new Map<L, number | undefined>();
    const epochs = [...readers.values()].filter((e): e is number => e !== undefined);
    const highest = epochs.length > 0 ? Math.max(...epochs) : undefined;
    const evicted: Array<{ link: L; description: string }> = [];
    if (epoch === undefined) {
      if (highest !== undefined) {
        return { ok: false, condition: STOLEN, description: `A receiver with owner level ${highest} holds this partition, so a receiver without an owner level is not allowed.` };
      }
      if (readers.size >= MAX_READERS_PER_PARTITION) {
        return { ok: false, condition: LIMIT_EXCEEDED, description: `At most ${MAX_READERS_PER_PARTITION} receivers may read a partition of a consumer group at once.` };
      }
    } else {
      if (highest !== undefined && highest > epoch) {
        return { ok: false, condition: STOLEN, description: `A receiver with the higher owner level ${highest} holds this partition.` };
      }
      for (const [other, otherEpoch] of readers) {
        evicted.push({ link: other, description: `A new receiver with owner level ${epoch} took this partition from the receiver with ${otherEpoch === undefined ? 'no owner level' : `owner level ${otherEpoch}`}.` });
        readers.delete(other);
      }
    }
    readers.set(link, epoch);
    this.#readers.set(scope, readers);
    return { ok: true, evicted };
  }

  release(scope: string, link: L): void {
    const readers = this.#readers.get(scope);
    if (!readers) return;
    readers.delete(link);
    if (readers.size === 0) this.#readers.delete(scope);
  }

  readers(scope: string): number {
    return this.#readers.get(scope)?.size ?? 0;
  }
}
