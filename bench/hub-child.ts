// The bench's own processes on this 2-core machine: the hub in a child process pinned to CPU 0,
// measured clients pinned to CPU 1 (taskset, when the machine has it), the orchestrator off the
// clients' core. One place for bench/main.ts, bench/outbox.ts and bench/instructions.ts.
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { HubInfo } from './overhead-types.ts';

export const hasTaskset = spawnSync('taskset', ['--version'], { stdio: 'ignore' }).status === 0;

/** The command and arguments that run node with `args` on `cpu` (unpinned without taskset). */
export function pinned(cpu: number, args: string[]): [string, string[]] {
  return hasTaskset ? ['taskset', ['-c', String(cpu), process.execPath, ...args]] : [process.execPath, args];
}

/** Keeps this process, which only orchestrates, off the clients' core. */
export function pinSelfToHubCore(): void {
  if (hasTaskset) spawnSync('taskset', ['-p', '-c', '0', String(process.pid)], { stdio: 'ignore' });
}

/**
 * Starts bench/hub-process.ts with `devices` identities on CPU 0. `nodeArgs` go before the script
 * (how the hub loads its packages: `--import tsx`, and `--conditions=source` for sources).
 */
export async function startHub(devices: number, nodeArgs: string[]): Promise<{ info: HubInfo; stop: () => Promise<void> }> {
  const script = fileURLToPath(new URL('./hub-process.ts', import.meta.url));
  const [cmd, args] = pinned(0, [...nodeArgs, script, String(devices)]);
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const lines = createInterface({ input: child.stdout! });
  const [first] = (await Promise.race([
    once(lines, 'line'),
    once(child, 'exit').then(() => {
      throw new Error('the hub process exited before printing its address');
    }),
  ])) as [string];
  return {
    info: JSON.parse(first) as HubInfo,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = once(child, 'exit');
      child.stdin!.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
