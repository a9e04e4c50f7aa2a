// One owner per outbox directory. Two clients appending to one log interleave their frames and
// acknowledge each other's sequence numbers, so the second open of a directory must fail. The lock
// is <dir>/outbox.lock holding {pid, host, token}; it appears with its content in one step (written
// to a temporary name, then hard-linked into place, which fails if the lock exists), so nobody
// ever reads a half-written lock. A lock whose process is gone (a crash, SIGKILL) is taken over;
// one held by a live process, by this process, or by another host (whose processes cannot be
// checked from here) is refused.
//
// Not covered: two processes taking over the same stale lock at the same instant may both
// succeed (each removes the stale file, then one links its own and the other's link fails, unless
// the second removal lands between them). A stale lock is a crash's leftover, so that race needs
// two restarts at once on one directory.
import { randomUUID } from 'node:crypto';
import { linkSync, readFileSync, realpathSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { SwitchyardError } from '@switchyard/errors';

export const LOCK_FILE = 'outbox.lock';

interface Owner {
  pid: number;
  host: string;
  token: string;
}

/** Directories (real paths) this process holds, so a second client of this process is refused. */
const held = new Set<string>();

export interface DirLock {
  readonly path: string;
  release(): void;
}

function inUse(dir: string, path: string, owner: Owner | undefined, self: boolean): SwitchyardError {
  const who = self ? 'another client of this process' : owner === undefined ? 'another process' : `process ${owner.pid} on ${owner.host}`;
  return new SwitchyardError(
    'STATE_FAILED',
    `outbox dir ${dir} is in use by ${who} (lock file ${path}); two clients cannot share one outbox dir: give each identity its own dir (or close the other client first)`,
    { details: { field: 'outbox.dir', dir, reason: 'locked', lockFile: path, ...(owner === undefined ? {} : { pid: owner.pid, host: owner.host }) } },
  );
}

function readOwner(path: string): Owner | 'gone' | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return 'gone';
    return undefined;
  }
  try {
    const owner = JSON.parse(text) as Partial<Owner>;
    if (typeof owner.pid === 'number' && typeof owner.host === 'string' && typeof owner.token === 'string') return owner as Owner;
  } catch {
    // Not a lock of ours: treated as held, never removed.
  }
  return undefined;
}

/** Whether the lock's owner may still be running: only a dead process on this host is known gone. */
function ownerAlive(owner: Owner): boolean {
  if (owner.host !== hostname()) return true;
  // Our own pid on a lock this process does not hold (lockDir checked): an earlier process that
  // had the same pid, as a container's pid 1 after a restart.
  if (owner.pid === process.pid) return false;
  try {
    process.kill(owner.pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Takes the lock of `dir` (which exists), or throws STATE_FAILED naming the dir and the owner. */
export function lockDir(dir: string): DirLock {
  const key = realpathSync(dir);
  const path = join(dir, LOCK_FILE);
  if (held.has(key)) throw inUse(dir, path, undefined, true);
  const owner: Owner = { pid: process.pid, host: hostname(), token: randomUUID() };
  const tmp = `${path}.${owner.token}`;
  writeFileSync(tmp, JSON.stringify(owner));
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        linkSync(tmp, path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
        const current = readOwner(path);
        if (current === 'gone') continue;
        if (current === undefined || ownerAlive(current)) throw inUse(dir, path, current, false);
        // Stale: its process is gone. Removed only if it is still the lock just read.
        const again = readOwner(path);
        if (again !== 'gone' && again !== undefined && again.token === current.token) rmSync(path, { force: true });
        continue;
      }
      held.add(key);
      return {
        path,
        release: () => {
          held.delete(key);
          const now = readOwner(path);
          if (now !== 'gone' && now !== undefined && now.token === owner.token) rmSync(path, { force: true });
        },
      };
    }
    throw inUse(dir, path, undefined, false);
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      // Already gone: nothing to clean.
    }
  }
}
