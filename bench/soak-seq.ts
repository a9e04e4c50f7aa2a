// Which numbered messages of one identity arrived, and how often: one byte per sequence number
// (saturating at 255), so thirty minutes of telemetry costs kilobytes, not a Set of strings.
import type { TelemetryReport } from './soak-types.ts';

export class SeqTracker {
  #counts = new Uint8Array(1024);
  #highest = -1;

  record(seq: number): void {
    if (seq >= this.#counts.length) {
      let size = this.#counts.length;
      while (size <= seq) size *= 2;
      const grown = new Uint8Array(size);
      grown.set(this.#counts);
      this.#counts = grown;
    }
    if (this.#counts[seq]! < 255) this.#counts[seq]! += 1;
    if (seq > this.#highest) this.#highest = seq;
  }

  /**
   * Against the numbers 0 … issued − 1 the client handed out. Lost: issued, never refused to the
   * caller, and never seen here. A message refused at the call (the outbox full, say) is the
   * caller's to handle, so it counts as rejected instead; `listed` caps the list of lost ones.
   */
  report(issued: number, rejected: readonly number[], listed: number): TelemetryReport {
    const refused = new Set(rejected);
    let unique = 0;
    let duplicates = 0;
    let lostCount = 0;
    let rejectedSeen = 0;
    const lost: number[] = [];
    for (let seq = 0; seq < issued; seq++) {
      const n = seq < this.#counts.length ? this.#counts[seq]! : 0;
      if (n > 0) {
        unique++;
        duplicates += n - 1;
        if (refused.has(seq)) rejectedSeen++;
      } else if (!refused.has(seq)) {
        lostCount++;
        if (lost.length < listed) lost.push(seq);
      }
    }
    // A number the client never issued would mean the ids are not what the soak thinks they are.
    let beyond = 0;
    for (let seq = Math.max(issued, 0); seq <= this.#highest; seq++) if (this.#counts[seq]! > 0) beyond++;
    return { unique, duplicates, lostCount, lost, rejectedSeen, beyond };
  }
}
