import { randomBytes } from 'node:crypto';
import { linkSync, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * One hub per state directory. SQLite used to give us this through an OS file lock; Node has no
 * flock, so the lock is a file created atomically (a hard link of a fully written temp file, so
 * nobody ever reads it half written) that names its owner. A lock whose owner is gone (a SIGKILLed
 * hub) is taken over, so a crash never leaves the directory blocked.
 */

interface Owner {
  pid: number;
  host: string;
  /** When the owning process started (epoch ms): tells a live owner from an earlier process that had the same pid. */
  started: number;
  /** Distinguishes two locks taken by processes that share every other field. */
  token: string;
}

/** Thrown when a live process holds the lock. */
export class StateDirBusyError extends Error {
  constructor(readonly lockPath: string, readonly owner: Owner) {
    super(`${lockPath} is held by pid ${owner.pid} on ${owner.host}`);
    this.name = 'StateDirBusyError';
  }
}

export interface StateDirLock {
  readonly path: string;
  /** Removes the lock file if it is still ours. Idempotent. */
  release(): void;
}

// Two starts of the same process read slightly different uptimes; a restart takes far longer.
const SAME_PROCESS_MS = 1000;
const processStarted = (): number => Date.now() - process.uptime() * 1000;

export function acquireStateDirLock(lockPath: string): StateDirLock {
  const me: Owner = { pid: process.pid, host: hostname(), started: Math.round(processStarted()), token: randomBytes(8).toString('hex') };
  const temp = `${lockPath}.${me.pid}.${me.token}`;
  writeFileSync(temp, JSON.stringify(me), { mode: 0o600 });
  try {
    // Each round either takes the lock, proves a live owner, or removes one stale lock; a few
    // rounds only matter when several hubs race for a directory whose owner died.
    for (let round = 0; round < 5; round++) {
      try {
        linkSync(temp, lockPath);
        return lockHandle(lockPath, me.token);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = readOwner(lockPath);
      if (owner === 'gone') continue;
      if (owner !== 'unreadable' && isAlive(owner)) throw new StateDirBusyError(lockPath, owner);
      takeOver(lockPath, owner, me.token);
    }
    const owner = readOwner(lockPath);
    throw new StateDirBusyError(lockPath, typeof owner === 'object' ? owner : { pid: 0, host: hostname(), started: 0, token: '' });
  } finally {
    unlinkSync(temp);
  }
}

function lockHandle(path: string, token: string): StateDirLock {
  let held = true;
  return {
    path,
    release() {
      if (!held) return;
      held = false;
      const owner = readOwner(path);
      if (typeof owner === 'object' && owner.token === token) unlinkSync(path);
    },
  };
}

function readOwner(path: string): Owner | 'gone' | 'unreadable' {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    throw error;
  }
  try {
    const value = JSON.parse(text) as Partial<Owner>;
    if (typeof value.pid === 'number' && typeof value.host === 'string' && typeof value.started === 'number' && typeof value.token === 'string') {
      return value as Owner;
    }
  } catch {
    // Falls through: a file we did not write (links are atomic, so never one half written).
  }
  return 'unreadable';
}

/**
 * Whether the owner may still be running. A pid on another host cannot be probed (a directory
 * shared between containers or machines), so it counts as alive: refusing is recoverable by
 * deleting the lock, two hubs on one directory are not.
 */
function isAlive(owner: Owner): boolean {
  if (owner.host !== hostname()) return true;
  if (owner.pid === process.pid) {
    // Our own pid: this process (another worker thread, or a second open) or an earlier one that
    // had the same pid, which is the rule in a container where the hub is pid 1.
    return Math.abs(owner.started - processStarted()) < SAME_PROCESS_MS;
  }
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    // EPERM: the pid exists but belongs to another user, so something is running there.
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
  return !isZombie(owner.pid);
}

/** A killed process that its parent has not reaped yet still answers kill(pid, 0). */
function isZombie(pid: number): boolean {
  if (process.platform !== 'linux') return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The state letter follows the parenthesised command name, which may itself hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) === 'Z';
  } catch {
    return false;
  }
}

/**
 * Removes a stale lock, unless someone replaced it since we judged it: the rename moves whatever
 * is there now out of the way atomically, and a lock that turns out to be live goes back.
 */
function takeOver(lockPath: string, judged: Owner | 'unreadable', token: string): void {
  const aside = `${lockPath}.stale.${token}`;
  try {
    renameSync(lockPath, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw error;
  }
  const moved = readOwner(aside);
  const same = judged === 'unreadable' ? moved === 'unreadable' : typeof moved === 'object' && moved.token === judged.token;
  if (!same) {
    try {
      linkSync(aside, lockPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  unlinkSync(aside);
}
