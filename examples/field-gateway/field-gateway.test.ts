// The field gateway program as a user runs it: a child process switched between protocols by
// SWITCHYARD_PROTOCOL alone, judged only by the JSON summary it prints.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { FieldGatewaySummary } from './main.ts';

const SENSORS = 6;
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const program = fileURLToPath(new URL('./main.ts', import.meta.url));

function runGateway(protocol: string): Promise<FieldGatewaySummary> {
  const env: NodeJS.ProcessEnv = { ...process.env, SWITCHYARD_PROTOCOL: protocol };
  // The test picks the protocol; a profile exported in the developer's shell must not.
  delete env.SWITCHYARD_PROFILE;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', program, '--sensors', String(SENSORS), '--seconds', '2', '--interval-ms', '500', '--json'],
      // Bounds the child even if it hangs; the program ends by itself after --seconds.
      { cwd: repoRoot, env, timeout: 90_000, maxBuffer: 4 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) {
          reject(new Error(`${protocol} run failed: ${error.message}\n${stderr}`));
          return;
        }
        resolve(JSON.parse(stdout) as FieldGatewaySummary);
      },
    );
  });
}

describe.each([
  { protocol: 'amqp', multiplexed: true, connections: 1 },
  { protocol: 'amqp-ws', multiplexed: true, connections: 1 },
  { protocol: 'mqtt', multiplexed: false, connections: SENSORS },
])('field gateway with SWITCHYARD_PROTOCOL=$protocol', ({ protocol, multiplexed, connections }) => {
  it(`relays every sensor over ${connections === 1 ? 'one connection' : 'one connection per sensor'}`, async () => {
    const summary = await runGateway(protocol);

    expect(summary.hub).toBe('embedded');
    expect(summary.protocol).toBe(protocol);
    expect(summary.multiplexed).toBe(multiplexed);
    if (!multiplexed) expect(summary.warnings.some((w) => w.startsWith('multiplexing lost'))).toBe(true);

    expect(summary.failedIdentities).toEqual([]);
    expect(summary.identitiesConnected).toBe(SENSORS);
    expect(summary.connectionsOpened).toBe(connections);
    expect(summary.distinctConnectionIds).toBe(connections);

    expect(summary.perSensor).toHaveLength(SENSORS);
    for (const sensor of summary.perSensor) {
      expect(sensor.relayed, sensor.deviceId).toBeGreaterThanOrEqual(1);
      expect(sensor.received, sensor.deviceId).toBe(sensor.relayed);
    }
    expect(summary.readings.misattributed).toBe(0);
    expect(summary.readings.receivedByHub).toBe(summary.readings.relayed);
    expect(summary.c2d.misrouted).toBe(0);
  }, 120_000);
});
