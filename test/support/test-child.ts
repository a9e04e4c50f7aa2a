// A test's child script, run under tsx, with its output kept and its exit watched. Bounded: a child
// still running `killAfterMs` after it started is killed, so its test fails on the exit it reports
// (with the child's output) instead of holding the run until the test's own timeout.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';

export interface TestChild {
  readonly proc: ChildProcessWithoutNullStreams;
  /** Its exit code and signal; the signal is SIGKILL when the bound ended it. */
  readonly exited: Promise<[number | null, NodeJS.Signals | null]>;
  out(): string;
  err(): string;
  /** Resolves once stdout has shown `text`, or closed without it. */
  printed(text: string): Promise<void>;
  /** Writes `text` to its stdin and ends it. */
  endInput(text: string): void;
  /** Ends the bound; call it in the test's finally. */
  dispose(): void;
}

export function startTestChild(script: string, args: readonly string[], killAfterMs: number): TestChild {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolve) => proc.once('exit', (code, signal) => resolve([code, signal])));
  const bound = setTimeout(() => proc.kill('SIGKILL'), killAfterMs);
  return {
    proc,
    exited,
    out: () => out,
    err: () => err,
    printed: (text) =>
      new Promise<void>((resolve) => {
        const check = (): void => {
          if (out.includes(text)) resolve();
        };
        proc.stdout.on('data', check);
        proc.stdout.once('close', () => resolve());
        check();
      }),
    endInput: (text) => proc.stdin.end(text),
    dispose: () => clearTimeout(bound),
  };
}
