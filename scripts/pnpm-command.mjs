// The pnpm to run: the one on PATH when it is the version package.json pins, otherwise that
// version through npx (corepack may not reach its download host; the npm registry is enough).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Returns [command, leading args], e.g. ['pnpm', []] or ['npx', ['--yes', 'pnpm@10.34.9']]. */
export function pnpmCommand(root) {
  const version = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager.split('@')[1];
  try {
    if (execFileSync('pnpm', ['--version'], { stdio: 'pipe', encoding: 'utf8' }).trim() === version) return ['pnpm', []];
  } catch {
    // not installed, or not runnable: fall through to npx
  }
  return ['npx', ['--yes', `pnpm@${version}`]];
}
