// A consumer's project, made the way a user makes one: every package packed as it would be
// published, installed with npm into a fresh directory outside the workspace. The consumer test
// (test/consumer) runs programs there with plain node and tsc; the bench measures the installed
// client from there. Nothing run there can reach the workspace's sources or node_modules.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const run = promisify(execFile);
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Versions a user installs beside ours: the transports are optional peers, chosen per protocol. */
const THIRD_PARTY = [
  'azure-iot-device-mqtt@1.16.4',
  'azure-iot-device-amqp@1.14.4',
  'azure-iot-device-http@1.14.4',
  // The backend's libraries, for the local hub's service side as a consumer uses it.
  'azure-iothub@1.16.6',
  '@azure/event-hubs@^6.0.4',
  'ws@^8.18.0',
  'typescript@~5.9.3',
  '@types/node@^20.19.0',
];

/**
 * The environment of a user's shell: no `source` export condition (which the workspace's own test
 * run sets), no npm or pnpm settings inherited from the command that started the tests.
 */
export function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'NODE_OPTIONS' || /^(npm|pnpm)_/i.test(key) || key.startsWith('VITEST') || key === 'TEST') continue;
    env[key] = value;
  }
  return env;
}

export interface ConsumerProject {
  dir: string;
  tarballs: Record<string, string>;
  remove(): void;
}

/** `appFiles`: a directory whose files are copied into the project before the install. */
export async function createConsumerProject(options: { appFiles?: string } = {}): Promise<ConsumerProject> {
  const packDir = mkdtempSync(join(tmpdir(), 'switchyard-tarballs-'));
  const { stdout } = await run(process.execPath, [join(ROOT, 'scripts', 'pack-all.mjs'), packDir], { cwd: ROOT, env: userEnv(), maxBuffer: 16 << 20 });
  const { tarballs } = JSON.parse(stdout.trim().split('\n').at(-1)!) as { tarballs: Record<string, string> };

  const dir = mkdtempSync(join(tmpdir(), 'switchyard-consumer-'));
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'consumer', version: '1.0.0', private: true, type: 'module' }, null, 2)}\n`);
  if (options.appFiles !== undefined) for (const file of readdirSync(options.appFiles)) cpSync(join(options.appFiles, file), join(dir, file));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...Object.values(tarballs), ...THIRD_PARTY], {
    cwd: dir,
    env: userEnv(),
    maxBuffer: 16 << 20,
  });
  return {
    dir,
    tarballs,
    remove: () => {
      rmSync(dir, { recursive: true, force: true });
      rmSync(packDir, { recursive: true, force: true });
    },
  };
}

export interface Finished {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs a command in the project to its end, killing it (and failing) past `timeoutMs`. */
export function runIn(dir: string, command: string, args: string[], timeoutMs = 120_000): Promise<Finished> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: dir, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => { stdout += d.toString(); });
    child.stderr.on('data', (d: Buffer) => { stderr += d.toString(); });
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not finish within ${timeoutMs} ms\n${stdout}\n${stderr}`));
    }, timeoutMs);
    child.once('error', (err) => { clearTimeout(timer); reject(err); });
    child.once('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }); });
  });
}

/** Starts a long-running command in its own process group, so a signal reaches npx's child too. */
export function startIn(dir: string, command: string, args: string[]): ChildProcess {
  return spawn(command, args, { cwd: dir, env: userEnv(), stdio: ['ignore', 'pipe', 'pipe'], detached: true });
}

export async function listTarball(path: string): Promise<string[]> {
  const { stdout } = await run('tar', ['-tzf', path], { maxBuffer: 16 << 20 });
  return stdout.split('\n').filter((line) => line !== '');
}

export async function readFromTarball(path: string, member: string): Promise<string> {
  const { stdout } = await run('tar', ['-xzOf', path, member], { maxBuffer: 16 << 20 });
  return stdout;
}
