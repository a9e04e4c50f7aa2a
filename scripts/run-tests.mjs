// The README's test command: type-check, lint, then every vitest suite. Ends with the plain
// "N passed, N failed, N skipped" line that CI reads, counted from vitest's JSON report.
import { spawnSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
const run = (cmd, args) => spawnSync(cmd, args, { cwd: root, stdio: 'inherit' }).status ?? 1;
const extra = process.argv.slice(2);

let failedSteps = 0;
if (extra.length === 0) {
  console.log('== typecheck'); failedSteps += run(bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']) === 0 ? 0 : 1;
  console.log('== lint'); failedSteps += run(bin('eslint'), ['.']) === 0 ? 0 : 1;
  console.log('== import cycles'); failedSteps += run(process.execPath, [join(root, 'scripts', 'check-cycles.mjs')]) === 0 ? 0 : 1;
  // The API reference is built from the public entry points with warnings as errors, so a public
  // type that leaks an unexported one, or a broken {@link}, fails here.
  console.log('== api reference'); failedSteps += run(bin('tsc'), ['-b', 'tsconfig.build.json']) === 0 && run(bin('typedoc'), ['--logLevel', 'Warn']) === 0 ? 0 : 1;
}
console.log('== tests');
const report = join(root, '.test-results.json');
rmSync(report, { force: true });
const status = run(bin('vitest'), ['run', '--reporter=default', '--reporter=json', `--outputFile.json=${report}`, ...extra]);

let passed = 0, failed = 0, skipped = 0;
try {
  const r = JSON.parse(readFileSync(report, 'utf8'));
  passed = r.numPassedTests; failed = r.numFailedTests; skipped = r.numPendingTests + r.numTodoTests;
  // A suite that fails to load has no tests to count; make it visible in the total.
  failed += r.testResults.filter((f) => f.status === 'failed' && f.assertionResults.length === 0).length;
} catch {
  failed += 1;
}
failed += failedSteps;
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
process.exit(status !== 0 || failed > 0 ? 1 : 0);
