// The backend program as a user runs it: a child process against its embedded local hub, judged
// only by the JSON summary it prints.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import type { BackendSummary } from './main.ts';

const EVENTS = 3;
const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
const program = fileURLToPath(new URL('./main.ts', import.meta.url));

interface Run {
  deviceId: string;
  site: string;
  intervalSeconds: number;
  summary: BackendSummary;
}

function runBackend(serviceTransport: string, deviceProtocol: string | undefined): Promise<Run> {
  const tag = randomBytes(3).toString('hex');
  const deviceId = `backend-test-${tag}`;
  const site = `site-${tag}`;
  // Any interval but the device's default (60), so the method's answer shows the command applied.
  const intervalSeconds = 10 + (randomBytes(1)[0]! % 40);
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The test picks the hub and the protocol; what the developer's shell exports must not.
  for (const name of ['IOTHUB_CONNECTION_STRING', 'EVENTHUB_CONNECTION_STRING', 'SWITCHYARD_PROFILE', 'SWITCHYARD_PROTOCOL']) delete env[name];
  if (deviceProtocol !== undefined) env.SWITCHYARD_PROTOCOL = deviceProtocol;
  const args = ['--conditions=source', '--import', 'tsx', program, '--json', '--service-transport', serviceTransport,
    '--device-id', deviceId, '--site', site, '--events', String(EVENTS), '--interval-seconds', String(intervalSeconds), '--timeout-seconds', '20'];
  return new Promise((resolve, reject) => {
    // Bounds the child even if it hangs; the program ends by itself.
    execFile(process.execPath, args, { cwd: repoRoot, env, timeout: 90_000, maxBuffer: 4 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error) {
        reject(new Error(`backend run failed: ${error.message}\n${stdout}\n${stderr}`));
        return;
      }
      resolve({ deviceId, site, intervalSeconds, summary: JSON.parse(stdout) as BackendSummary });
    });
  });
}

describe.each([
  { serviceTransport: 'amqp', deviceProtocol: undefined, expectedProtocol: 'mqtt' },
  { serviceTransport: 'amqp-ws', deviceProtocol: 'amqp', expectedProtocol: 'amqp' },
])('backend with the service Client over $serviceTransport, device over $expectedProtocol', ({ serviceTransport, deviceProtocol, expectedProtocol }) => {
  it('registers, commands with positive feedback, reads telemetry through Event Hubs, calls a method and queries by tag', async () => {
    const { deviceId, site, intervalSeconds, summary } = await runBackend(serviceTransport, deviceProtocol);

    expect(summary.errors).toEqual([]);
    expect(summary.ok).toBe(true);
    expect(summary.hub).toBe('embedded');
    expect(summary.serviceTransport).toBe(serviceTransport);
    expect(summary.deviceProtocol).toBe(expectedProtocol);

    expect(summary.registered).toEqual({ deviceId, status: 'enabled', authentication: 'sas', tags: { site } });

    const command = summary.command;
    expect(command?.receivedByDevice).toEqual({ command: 'set-interval', seconds: intervalSeconds });
    expect(command?.feedback).toMatchObject({ originalMessageId: command?.messageId, statusCode: 'Success', deviceId });

    const read = summary.telemetry?.read ?? [];
    expect(read).toHaveLength(EVENTS);
    for (const event of read) {
      expect(event.deviceId).toBe(deviceId);
      expect(event.properties).toMatchObject({ runId: summary.runId, unit: 'C' });
      expect(event.body).toMatchObject({ seq: Number(event.properties.seq) });
      expect(event.contentType).toBe('application/json');
    }
    expect(read.map((e) => e.properties.seq).sort()).toEqual(Array.from({ length: EVENTS }, (_, i) => String(i)));
    // One device's telemetry lands on one partition, in the order it was sent.
    expect(new Set(read.map((e) => e.partitionId)).size).toBe(1);
    expect(read.map((e) => e.sequenceNumber)).toEqual([...read.map((e) => e.sequenceNumber)].sort((a, b) => a - b));

    expect(summary.method?.status).toBe(200);
    expect(summary.method?.response).toEqual({ intervalSeconds, commandsApplied: 1, asked: summary.method?.payload });

    expect(summary.query?.sql).toBe(`SELECT * FROM devices WHERE tags.site = '${site}'`);
    expect(summary.query?.found).toBe(true);
    expect(summary.query?.deviceIds).toEqual([deviceId]);
    expect(summary.query?.tags).toEqual({ site });

    expect(summary.removed).toBe(true);
  }, 120_000);
});
