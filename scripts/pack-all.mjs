// Packs every published package as npm would publish it: each package's prepack builds it
// (tsc -b with its references), and `pnpm pack` turns `workspace:*` into real versions.
// Prints one JSON line: { dir, tarballs: { name: path } }.
//   node scripts/pack-all.mjs [destination]   (default: a new temporary directory)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { pnpmCommand } from './pnpm-command.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const dest = process.argv[2] ? resolve(process.argv[2]) : mkdtempSync(join(tmpdir(), 'switchyard-pack-'));
const [pnpm, pnpmArgs] = pnpmCommand(root);

const tarballs = {};
for (const dir of readdirSync(join(root, 'packages'))) {
  const pkgDir = join(root, 'packages', dir);
  const { name, private: isPrivate } = JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8'));
  if (isPrivate) continue;
  const out = execFileSync(pnpm, [...pnpmArgs, 'pack', '--pack-destination', dest, '--json'], { cwd: pkgDir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  // prepack's own output (the build) comes first on stdout; the report is the JSON after it.
  tarballs[name] = JSON.parse(out.slice(out.search(/^\{/m))).filename;
}
console.log(JSON.stringify({ dir: dest, tarballs }));
