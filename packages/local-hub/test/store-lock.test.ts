import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LOCK_FILE, openHubStore } from '../src/store/index.ts';
import { acquireStateDirLock } from '../src/store/lock.ts';
import { openError } from './support/store.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-lock-'));
  dirs.push(dir);
  return dir;
}

const processStarted = Math.round(Date.now() - process.uptime() * 1000);

/** A lock file as another process would have left it. */
function plantLock(dir: string, owner: { pid: number; host?: string; started?: number }): void {
  writeFileSync(join(dir, LOCK_FILE), JSON.stringify({ host: hostname(), started: 0, token: 'planted', ...owner }));
}

/** The pid of a process that has exited and been reaped. */
function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', () => resolve(child.pid!));
  });
}

describe('state dir lock', () => {
  it('takes over a lock whose owner has exited', async () => {
    const dir = tempDir();
    plantLock(dir, { pid: await deadPid() });
    const store = openHubStore({ stateDir: dir });
    expect(JSON.parse(readFileSync(join(dir, LOCK_FILE), 'utf8'))).toMatchObject({ pid: process.pid });
    store.close();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
  });

  it('takes over a lock with its own pid from an earlier process (a container restart, where the hub is pid 1 again)', () => {
    const dir = tempDir();
    plantLock(dir, { pid: process.pid, started: processStarted - 60_000 });
    openHubStore({ stateDir: dir }).close();
  });

  it('refuses a lock held by this very process, and one held by a live process', () => {
    const dir = tempDir();
    plantLock(dir, { pid: process.pid, started: processStarted });
    expect((openError(dir) as Error).message).toContain(`held by pid ${process.pid}`);
    plantLock(dir, { pid: process.ppid });
    const error = openError(dir);
    expect(error).toMatchObject({ code: 'STATE_FAILED', details: { field: 'stateDir' } });
    expect((error as Error).message).toContain('Another hub process');
    expect(readFileSync(join(dir, LOCK_FILE), 'utf8')).toContain('planted');
  });

  it('refuses a lock from another host, whose pid cannot be checked here, and names the file to delete', () => {
    const dir = tempDir();
    plantLock(dir, { pid: 1, host: `not-${hostname()}` });
    const message = (openError(dir) as Error).message;
    expect(message).toContain('Another hub process');
    expect(message).toContain(`delete ${join(dir, LOCK_FILE)}`);
  });

  it('takes over a lock file it cannot read (links are atomic, so no hub leaves one half written)', () => {
    const dir = tempDir();
    writeFileSync(join(dir, LOCK_FILE), '');
    openHubStore({ stateDir: dir }).close();
  });

  it('release leaves a lock that is no longer its own', () => {
    const dir = tempDir();
    const path = join(dir, LOCK_FILE);
    const lock = acquireStateDirLock(path);
    plantLock(dir, { pid: process.ppid });
    lock.release();
    expect(readFileSync(path, 'utf8')).toContain('planted');
    lock.release();
  });

  it('leaves no temp files behind, taken or refused', () => {
    const dir = tempDir();
    const store = openHubStore({ stateDir: dir });
    openError(dir);
    store.close();
    openHubStore({ stateDir: dir }).close();
    expect(existsSync(join(dir, LOCK_FILE))).toBe(false);
    expect(readdirSync(dir).sort()).toEqual(['hub.journal']);
  });
});
