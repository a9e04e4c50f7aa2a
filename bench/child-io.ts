// What every measured bench child shares (bench/overhead-child.ts, bench/outbox-child.ts): the
// line protocol with its parent over stdin/stdout, and the CPU of its threads from /proc.
import { readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

export interface ThreadTimes {
  mainNs: number;
  otherNs: number;
  voluntarySwitches: number;
  involuntarySwitches: number;
  /** The other threads' ns by name and start order ("node#1": the first thread after the main one). */
  otherByName: Record<string, number>;
}

/** CPU ns per thread class and context switches so far, from /proc; undefined off Linux. */
export function threadTimes(): ThreadTimes | undefined {
  try {
    let mainNs = 0;
    let otherNs = 0;
    let voluntarySwitches = 0;
    let involuntarySwitches = 0;
    const otherByName: Record<string, number> = {};
    const tids = readdirSync('/proc/self/task').sort((a, b) => Number(a) - Number(b));
    for (const [index, tid] of tids.entries()) {
      const ns = Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]);
      if (Number(tid) === process.pid) mainNs += ns;
      else {
        otherNs += ns;
        // Node 20 names none of its threads: the order they were started in tells them apart
        // (V8's platform workers first, libuv's pool only once something used it).
        const name = `${readFileSync(`/proc/self/task/${tid}/comm`, 'utf8').trim()}#${index}`;
        otherByName[name] = (otherByName[name] ?? 0) + ns;
      }
      const status = readFileSync(`/proc/self/task/${tid}/status`, 'utf8');
      voluntarySwitches += Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
      involuntarySwitches += Number(/nonvoluntary_ctxt_switches:\s+(\d+)/.exec(status)?.[1] ?? 0);
    }
    return { mainNs, otherNs, voluntarySwitches, involuntarySwitches, otherByName };
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
