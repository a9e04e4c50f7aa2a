// Installs the workspace on first use so that `npm run demo` and `npm test` work on a machine
// that has only Node and npm. pnpm is fetched through npx because corepack may not reach its
// download host; the lockfile pins every package, so the result is the same as a local pnpm.
import { execSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

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
  const pnpmVersion = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).packageManager.split('@')[1];
  const hasPnpm = (() => { try { return execSync('pnpm --version', { stdio: 'pipe' }).toString().trim() === pnpmVersion; } catch { return false; } })();
  const pnpm = hasPnpm ? 'pnpm' : `npx --yes pnpm@${pnpmVersion}`;
  console.error(`[setup] installing dependencies with ${pnpm} (first run only)…`);
  // The hub's store (better-sqlite3) compiles on install. node-gyp downloads Node's headers
  // unless told where they are; offline machines ship them with Node, so point it there.
  const env = { ...process.env };
  const headers = join(dirname(dirname(process.execPath)), 'include', 'node', 'node.h');
  if (!env.npm_config_nodedir && !env.NPM_CONFIG_NODEDIR && existsSync(headers)) env.npm_config_nodedir = dirname(dirname(process.execPath));
  execSync(`${pnpm} install --frozen-lockfile --reporter=append-only`, { cwd: root, env, stdio: ['ignore', 'inherit', 'inherit'] });
}
