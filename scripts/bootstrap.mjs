// Installs the workspace on first use so that `npm run demo` and `npm test` work on a machine
// that has only Node and npm. pnpm is fetched through npx because corepack may not reach its
// download host; the lockfile pins every package, so the result is the same as a local pnpm.
import { execFileSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { pnpmCommand } from './pnpm-command.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.error(`switchyard needs Node >= 20.19; this is ${process.version}.`);
  process.exit(1);
}

const marker = join(root, 'node_modules', '.modules.yaml');
const lock = join(root, 'pnpm-lock.yaml');
const upToDate = existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs;
if (!upToDate) {
  const [command, args] = pnpmCommand(root);
  console.error(`[setup] installing dependencies with ${[command, ...args].join(' ')} (first run only)…`);
  // Nothing in the workspace compiles on install (the hub's store is plain JS), so no compiler,
  // Python or Node headers are needed: the install only unpacks what the lockfile names.
  execFileSync(command, [...args, 'install', '--frozen-lockfile', '--reporter=append-only'], { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
}
