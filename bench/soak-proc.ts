// What a process holds, read from outside it: resident memory and open file descriptors from
// /proc/<pid>, so the figures do not depend on the process cooperating (Linux only).
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcSample {
  rssMB: number;
  fds: number;
}

export function sampleProc(pid: number | undefined): ProcSample | undefined {
  if (pid === undefined) return undefined;
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kib = Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? Number.NaN);
    return { rssMB: kib / 1024, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return undefined; // gone, or no /proc
  }
}

/** First, highest and last samples of one process over a run. */
export class ProcTrack {
  start: ProcSample | undefined;
  end: ProcSample | undefined;
  max: ProcSample | undefined;
  last: ProcSample | undefined;

  sample(pid: number | undefined): ProcSample | undefined {
    const s = sampleProc(pid);
    if (s === undefined) return undefined;
    this.last = s;
    this.start ??= s;
    this.max = this.max === undefined ? s : { rssMB: Math.max(this.max.rssMB, s.rssMB), fds: Math.max(this.max.fds, s.fds) };
    return s;
  }

  /** The reading after the final drain, before close: what the run left behind. */
  finish(pid: number | undefined): void {
    this.end = this.sample(pid) ?? this.last;
  }
}
