// What every measured bench child shares (bench/overhead-child.ts, bench/outbox-child.ts): the
// line protocol with its parent over stdin/stdout, and the CPU of its threads from /proc.
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** CPU ns per thread class and context switches so far, from /proc; undefined off Linux. */
export function threadTimes(): { mainNs: number; otherNs: number; voluntarySwitches: number; involuntarySwitches: number } | undefined {
  try {
    let mainNs = 0;
    let otherNs = 0;
    let voluntarySwitches = 0;
    let involuntarySwitches = 0;
    for (const tid of readdirSync('/proc/self/task')) {
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      if (Number(tid) === process.pid) mainNs += ns;
      else otherNs += ns;
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      voluntarySwitches += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      involuntarySwitches += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    }
    return { mainNs, otherNs, voluntarySwitches, involuntarySwitches };
  } catch {
    return undefined;
  }
}

/** One line to the parent, resolved once written. */
export function say(line: string): Promise<void> {
  return new Promise((resolve) => process.stdout.write(`${line}\n`, () => resolve()));
}

/** The parent's next command line; rejects once stdin closed before END. */
export function commandLines(): () => Promise<string> {
  const commands = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
  return async () => {
    const { value, done } = await commands.next();
    if (done === true) throw new Error('stdin closed before END');
    return value as string;
  };
}
