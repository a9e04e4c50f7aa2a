// The hub process's control channel for the soak (bench/soak.ts): JSON-line requests on stdin,
// one JSON reply line each on stdout, plus every fault event as it happens. The soak needs the
// hub's side of the story from inside the hub's own process: which numbered telemetry ids arrived
// (counted at the moment the hub accepted them, so the 10 000-record window of hub.telemetry()
// cannot hide anything), what faults did, and the service calls (C2D, methods) a backend makes.
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import type { LocalHub } from '@switchyard/local-hub';
import { SeqTracker } from './soak-seq.ts';
import type { HubRequest, TelemetryReport } from './soak-types.ts';

/** Serves requests until `input` ends; `write` gets one JSON line (with its newline) per message. */
export function serveControl(hub: LocalHub, input: Readable, write: (line: string) => void): void {
  const send = (message: object): void => write(`${JSON.stringify(message)}\n`);
  const trackers = new Map<string, SeqTracker>();
  let untracked = 0;
  hub.onTelemetry((record) => {
    // Soak clients number their messages `<deviceId>:<seq>`; anything else is only counted.
    const id = record.systemProperties.messageId;
    const prefix = `${record.deviceId}:`;
    const seq = typeof id === 'string' && id.startsWith(prefix) ? Number(id.slice(prefix.length)) : Number.NaN;
    if (!Number.isSafeInteger(seq) || seq < 0) {
      untracked++;
      return;
    }
    let tracker = trackers.get(record.deviceId);
    if (tracker === undefined) trackers.set(record.deviceId, (tracker = new SeqTracker()));
    tracker.record(seq);
  });
  hub.faults.on('fault', (event) => send({ event: 'fault', at: Date.now(), ...event }));

  const handle = async (request: HubRequest): Promise<unknown> => {
    switch (request.op) {
      case 'create': {
        const keys: Record<string, string> = {};
        for (const id of request.deviceIds) {
          const record = hub.getDevice(id) ?? hub.createDevice(id);
          if (record.authentication.type !== 'sas') throw new Error(`${id}: expected a SAS device`);
          keys[id] = record.authentication.primaryKey;
        }
        return keys;
      }
      case 'inject':
        return request.deviceIds.map((id) => hub.faults.inject(id, { type: request.type as never, ...(request.durationSeconds === undefined ? {} : { durationSeconds: request.durationSeconds }) }));
      case 'network':
        return request.deviceIds.map((id) =>
          hub.faults.network(id, { kind: request.kind as never, ...(request.seconds === undefined ? {} : { seconds: request.seconds }), ...(request.delayMs === undefined ? {} : { delayMs: request.delayMs }) }),
        );
      case 'clear':
        return hub.faults.clear();
      case 'c2d':
        hub.sendC2D(request.deviceId, { body: Buffer.from(request.messageId), messageId: request.messageId });
        return true;
      case 'method':
        return await hub.invokeMethod(request.deviceId, { methodName: request.methodName, payload: request.payload, responseTimeoutInSeconds: request.timeoutSeconds, connectTimeoutInSeconds: 0 });
      case 'telemetry': {
        const reports: Record<string, TelemetryReport> = {};
        for (const [id, { issued, rejected }] of Object.entries(request.devices)) reports[id] = (trackers.get(id) ?? new SeqTracker()).report(issued, rejected, 200);
        return { reports, untracked };
      }
      case 'stats': {
        const stats = hub.stats();
        return { connections: stats.connections, connectedIdentities: stats.connectedIdentities.map((s) => s.deviceId), activeFaults: hub.faults.active().length };
      }
    }
  };

  createInterface({ input }).on('line', (line) => {
    let request: HubRequest;
    try {
      request = JSON.parse(line) as HubRequest;
    } catch {
      send({ reply: -1, ok: false, error: { message: 'not JSON' } });
      return;
    }
    handle(request).then(
      (value) => send({ reply: request.id, ok: true, value }),
      (err: unknown) => {
        const e = err as { message?: string; errorCode?: number | string; code?: string };
        send({ reply: request.id, ok: false, error: { message: String(e?.message ?? err), ...(e?.errorCode === undefined ? {} : { errorCode: String(e.errorCode) }), ...(e?.code === undefined ? {} : { code: e.code }) } });
      },
    );
  });
}
