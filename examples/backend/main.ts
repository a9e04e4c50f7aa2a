// A backend service as a device team writes it, on Microsoft's service SDKs alone: azure-iothub
// (Registry over REST, Client over AMQP or AMQP-WebSockets) and @azure/event-hubs (the hub's
// built-in Event Hubs-compatible endpoint). It registers a device with a site tag, sends it a
// command as C2D and waits for positive delivery feedback, reads its telemetry from the built-in
// endpoint, calls a direct method on it, and finds it again by querying device twins by tag.
// The device itself (sensor.ts, on @switchyard/device) runs in the same program.
//
// Without --hub it starts an embedded local hub; with --hub it runs against that IoT Hub.
//
//   node --conditions=source --import tsx examples/backend/main.ts [--json]
//   node --conditions=source --import tsx examples/backend/main.ts --hub "$IOTHUB_CONNECTION_STRING" --event-hub "$EVENTHUB_CONNECTION_STRING"
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import azureIotCommon from 'azure-iot-common';
import type { Client as ServiceClient, Registry } from 'azure-iothub';
import type { EventHubConsumerClient, ReceivedEventData, Subscription } from '@azure/event-hubs';
import { redactSecrets } from '@switchyard/errors';
import { startLocalHub, type LocalHub } from '@switchyard/local-hub';
import { closeAll, retrying, within } from './bounded.ts';
import { clientsForLocalHub, clientsFromConnectionStrings, type HubClients, type ServiceTransport } from './clients.ts';
import { startSensor, STATUS_METHOD, type Sensor, type SensorCommand } from './sensor.ts';

const USAGE = `usage: node --conditions=source --import tsx examples/backend/main.ts [options]
  --hub STRING            IoT Hub service connection string (policy with registry read/write and
                          service connect, e.g. iothubowner); default $IOTHUB_CONNECTION_STRING.
                          Without it, an embedded local hub is started.
  --event-hub STRING      the hub's built-in endpoint (Event Hub-compatible connection string,
                          with EntityPath); default $EVENTHUB_CONNECTION_STRING. Needed with --hub.
  --consumer-group NAME   consumer group to read telemetry with (default $Default)
  --service-transport T   amqp | amqp-ws, for C2D and feedback (default amqp)
  --device-id ID          the device to register (default backend-<random>)
  --site NAME             the site tag to set and to query by (default plant-7)
  --events N              telemetry events the device sends and the backend reads (default 3)
  --interval-seconds S    what the set-interval command asks the device for (default 30)
  --timeout-seconds S     longest wait for each step (default 30)
  --keep-device           leave the device registered at the end (default: delete it)
  --json                  print only the summary, as JSON`;

// azure-iothub exports no Message class; its samples take azure-iot-common's.
const { Message } = azureIotCommon;

interface ReadEvent {
  deviceId: unknown;
  partitionId: string;
  sequenceNumber: number;
  enqueuedTimeUtc: string;
  messageId: unknown;
  contentType: unknown;
  properties: Record<string, unknown>;
  body: unknown;
}

interface FeedbackRecord {
  originalMessageId: string;
  statusCode: string;
  description: string;
  deviceId: string;
  enqueuedTimeUtc: string;
}

export interface BackendSummary {
  ok: boolean;
  hub: 'embedded' | 'external';
  hostName: string;
  runId: string;
  deviceId: string;
  site: string;
  serviceTransport: ServiceTransport;
  /** The device's protocol, as its profile got it from the selector. */
  deviceProtocol: string | null;
  registered: { deviceId: string; status: string; authentication: string; tags: Record<string, unknown> } | null;
  command: { messageId: string; sent: SensorCommand; receivedByDevice: unknown; feedback: FeedbackRecord | null } | null;
  telemetry: { sent: number; consumerGroup: string; read: ReadEvent[] } | null;
  method: { name: string; payload: unknown; status: number; response: unknown; attempts: number } | null;
  query: { sql: string; deviceIds: string[]; found: boolean; tags: Record<string, unknown> | null; attempts: number } | null;
  /** Whether the device was deleted from the registry at the end. */
  removed: boolean;
  errors: Array<{ step: string; message: string }>;
  elapsedMs: number;
}

interface Options {
  hub: string | undefined;
  eventHub: string | undefined;
  consumerGroup: string;
  serviceTransport: ServiceTransport;
  deviceId: string;
  site: string;
  events: number;
  intervalSeconds: number;
  timeoutMs: number;
  keepDevice: boolean;
  json: boolean;
}

function positiveInteger(value: string, flag: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${flag} takes a whole number above 0, not "${value}"`);
  return n;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      hub: { type: 'string' },
      'event-hub': { type: 'string' },
      'consumer-group': { type: 'string', default: '$Default' },
      'service-transport': { type: 'string', default: 'amqp' },
      'device-id': { type: 'string' },
      site: { type: 'string', default: 'plant-7' },
      events: { type: 'string', default: '3' },
      'interval-seconds': { type: 'string', default: '30' },
      'timeout-seconds': { type: 'string', default: '30' },
      'keep-device': { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    process.exit(0);
  }
  const serviceTransport = values['service-transport'];
  if (serviceTransport !== 'amqp' && serviceTransport !== 'amqp-ws') throw new Error(`--service-transport is amqp or amqp-ws, not "${serviceTransport}"`);
  const site = values.site;
  // The site goes into a query string literal; keep it to what needs no escaping.
  if (!/^[\w.-]+$/.test(site)) throw new Error('--site takes letters, digits, ".", "-" and "_"');
  const hub = values.hub ?? process.env.IOTHUB_CONNECTION_STRING;
  const eventHub = values['event-hub'] ?? process.env.EVENTHUB_CONNECTION_STRING;
  if (hub !== undefined && eventHub === undefined) throw new Error('--hub needs --event-hub (or EVENTHUB_CONNECTION_STRING): the built-in endpoint to read telemetry from');
  return {
    hub,
    eventHub,
    consumerGroup: values['consumer-group'],
    serviceTransport,
    deviceId: values['device-id'] ?? `backend-${randomBytes(3).toString('hex')}`,
    site,
    events: positiveInteger(values.events, '--events'),
    intervalSeconds: positiveInteger(values['interval-seconds'], '--interval-seconds'),
    timeoutMs: positiveInteger(values['timeout-seconds'], '--timeout-seconds') * 1000,
    keepDevice: values['keep-device'],
    json: values.json,
  };
}

function message(error: unknown): string {
  return redactSecrets(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

/** Event Hubs hands a JSON body over parsed and any other as bytes; the summary shows both as values. */
function plainBody(body: unknown): unknown {
  if (!Buffer.isBuffer(body) && !(body instanceof Uint8Array)) return body;
  const text = Buffer.from(body).toString('utf8');
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

/** Reads the device's telemetry of this run from every partition, resolving once `count` arrived. */
function readTelemetry(consumer: EventHubConsumerClient, deviceId: string, runId: string, count: number, since: Date): { events: ReadEvent[]; done: Promise<ReadEvent[]>; subscription: Subscription } {
  const events: ReadEvent[] = [];
  let resolve!: (events: ReadEvent[]) => void;
  let reject!: (error: Error) => void;
  const done = new Promise<ReadEvent[]>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  const subscription = consumer.subscribe({
    processEvents: async (batch: ReceivedEventData[], context) => {
      for (const event of batch) {
        // A consumer group is shared with whatever else reads the hub: keep only this run's events.
        if (event.systemProperties?.['iothub-connection-device-id'] !== deviceId || event.properties?.runId !== runId) continue;
        events.push({
          deviceId: event.systemProperties['iothub-connection-device-id'],
          partitionId: context.partitionId,
          sequenceNumber: event.sequenceNumber,
          enqueuedTimeUtc: event.enqueuedTimeUtc.toISOString(),
          messageId: event.messageId,
          contentType: event.contentType,
          properties: { ...event.properties },
          body: plainBody(event.body),
        });
      }
      if (events.length >= count) resolve(events);
    },
    processError: async (error) => {
      // The client retries what passes by itself; what reaches here and stops the read is reported.
      if ((error as { retryable?: boolean }).retryable !== true) reject(error instanceof Error ? error : new Error(String(error)));
    },
  }, { startPosition: { enqueuedOn: since }, maxWaitTimeInSeconds: 1 });
  return { events, done, subscription };
}

/** Resolves with the feedback record for `messageId`, completing every feedback message it takes. */
function feedbackFor(receiver: ServiceClient.ServiceReceiver, messageId: string): Promise<FeedbackRecord> {
  return new Promise((resolve, reject) => {
    receiver.on('message', (msg: { data: Buffer }) => {
      let records: FeedbackRecord[] = [];
      try {
        records = JSON.parse(Buffer.from(msg.data).toString('utf8')) as FeedbackRecord[];
      } catch {
        // Not a feedback batch: nothing of ours in it.
      }
      receiver.complete(msg as unknown as Parameters<typeof receiver.complete>[0], () => undefined);
      const ours = records.find((r) => r.originalMessageId === messageId);
      if (ours) resolve(ours);
    });
    receiver.on('error', (error: Error) => reject(error));
  });
}

function sdkErrorText(error: unknown): string {
  const e = error as { name?: string; message?: string; responseBody?: unknown };
  return `${e.name ?? ''} ${e.message ?? ''} ${typeof e.responseBody === 'string' ? e.responseBody : ''}`;
}

/** IoT Hub answers 404103 until the device has subscribed to methods; that passes by itself. */
function deviceNotListeningYet(error: unknown): boolean {
  return /404103|DeviceNotOnline|not online/i.test(sdkErrorText(error));
}

async function runBackend(options: Options, say: (line: string) => void): Promise<BackendSummary> {
  const started = Date.now();
  const runId = randomBytes(4).toString('hex');
  const closers: Array<() => Promise<unknown>> = [];
  let hub: LocalHub | undefined;
  let clients: HubClients;
  if (options.hub !== undefined && options.eventHub !== undefined) {
    clients = clientsFromConnectionStrings(options.hub, options.eventHub);
  } else {
    hub = await startLocalHub({ inMemory: true });
    clients = clientsForLocalHub(hub);
    say(`embedded local hub ${hub.hostName} on ${hub.address} (AMQP :${hub.ports.amqp}, HTTPS :${hub.ports.https}; TLS with its own CA)`);
  }
  const summary: BackendSummary = {
    ok: false,
    hub: hub ? 'embedded' : 'external',
    hostName: clients.hostName,
    runId,
    deviceId: options.deviceId,
    site: options.site,
    serviceTransport: options.serviceTransport,
    deviceProtocol: null,
    registered: null,
    command: null,
    telemetry: null,
    method: null,
    query: null,
    removed: false,
    errors: [],
    elapsedMs: 0,
  };
  const { deviceId, timeoutMs } = options;
  const stop = new AbortController();
  let step = 'register';
  let registry: Registry | undefined;
  let registered = false;
  try {
    // 1. Register the device (the hub generates its keys) and tag it with its site.
    registry = clients.registry();
    const { responseBody: device } = await within(registry.create({ deviceId }), timeoutMs, 'Registry.create');
    registered = true;
    const { responseBody: twin } = await within(registry.updateTwin(deviceId, { tags: { site: options.site } }, '*'), timeoutMs, 'Registry.updateTwin');
    const primaryKey = device.authentication?.symmetricKey?.primaryKey;
    if (!primaryKey) throw new Error('the registry returned no symmetric key for the new device');
    summary.registered = { deviceId: device.deviceId, status: String(device.status), authentication: device.authentication?.x509Thumbprint?.primaryThumbprint ? 'x509' : 'sas', tags: { ...twin.tags } };
    say(`registered ${deviceId} (${summary.registered.status}), tags ${JSON.stringify(twin.tags)}`);

    // 2. The device comes online with the keys the registry handed out.
    step = 'device';
    const sensor: Sensor = await within(startSensor(`HostName=${clients.hostName};DeviceId=${deviceId};SharedAccessKey=${primaryKey}`, clients, stop.signal), timeoutMs, 'device connect');
    closers.push(() => sensor.close());
    summary.deviceProtocol = sensor.decision.protocol;
    say(`device connected over ${sensor.decision.protocol}: ${sensor.decision.because[0] ?? ''}`);

    // 3. Telemetry, read back through the built-in endpoint. Reading starts a minute back so a
    //    clock behind the hub's loses nothing; the run id filters out older events.
    step = 'telemetry';
    const consumer = clients.eventHubConsumer(options.consumerGroup);
    closers.push(() => consumer.close());
    const reading = readTelemetry(consumer, deviceId, runId, options.events, new Date(Date.now() - 60_000));
    closers.push(() => reading.subscription.close());
    await within(sensor.sendReadings(options.events, runId), timeoutMs, 'device telemetry');
    summary.telemetry = { sent: options.events, consumerGroup: options.consumerGroup, read: reading.events };
    await within(reading.done, timeoutMs, `${options.events} events through Event Hubs`);
    say(`read ${reading.events.length} event(s) of ${deviceId} through Event Hubs (partition ${[...new Set(reading.events.map((e) => e.partitionId))].join(', ')})`);

    // 4. A command as C2D, with positive delivery feedback asked for.
    step = 'command';
    const service = clients.serviceClient(options.serviceTransport);
    // An 'error' event without a listener would end the process; failures surface on the calls.
    service.on('error', () => undefined);
    await within(service.open(), timeoutMs, 'service Client.open');
    closers.push(() => service.close());
    const { result: feedback } = await within(service.getFeedbackReceiver(), timeoutMs, 'feedback receiver');
    const command: SensorCommand = { command: 'set-interval', seconds: options.intervalSeconds };
    const messageId = `${runId}-cmd`;
    const c2d = new Message(JSON.stringify(command));
    c2d.messageId = messageId;
    c2d.ack = 'positive';
    c2d.contentType = 'application/json';
    c2d.contentEncoding = 'utf-8';
    const feedbackRecord = feedbackFor(feedback, messageId);
    const arrived = sensor.commandArrived(messageId);
    summary.command = { messageId, sent: command, receivedByDevice: null, feedback: null };
    await within(service.send(deviceId, c2d), timeoutMs, 'Client.send');
    summary.command.receivedByDevice = await within(arrived, timeoutMs, 'the device receiving the command');
    summary.command.feedback = await within(feedbackRecord, timeoutMs, 'delivery feedback');
    say(`command ${messageId} delivered; feedback ${summary.command.feedback.statusCode} (${summary.command.feedback.description})`);

    // 5. A direct method; its answer shows the command took effect.
    step = 'method';
    const payload = { runId, verbose: true };
    let attempts = 0;
    const { result } = await retrying('invokeDeviceMethod', timeoutMs, () => {
      attempts++;
      return service.invokeDeviceMethod(deviceId, { methodName: STATUS_METHOD, payload, responseTimeoutInSeconds: 10 });
    }, deviceNotListeningYet);
    const answer = result as { status: number; payload: unknown };
    summary.method = { name: STATUS_METHOD, payload, status: answer.status, response: answer.payload, attempts };
    say(`${STATUS_METHOD} answered ${answer.status}: ${JSON.stringify(answer.payload)}`);

    // 6. Find the device again by its tag. IoT Hub's query index lags writes by a few seconds.
    step = 'query';
    const sql = `SELECT * FROM devices WHERE tags.site = '${options.site}'`;
    let queries = 0;
    const found = await retrying('query by tag', timeoutMs, async () => {
      queries++;
      const query = registry!.createQuery(sql, 100);
      const twins: Array<{ deviceId: string; tags?: Record<string, unknown> }> = [];
      while (query.hasMoreResults) twins.push(...(await within(query.next(), timeoutMs, 'query page')).result as typeof twins);
      return twins.some((t) => t.deviceId === deviceId) ? twins : undefined;
    });
    summary.query = { sql, deviceIds: found.map((t) => t.deviceId), found: true, tags: found.find((t) => t.deviceId === deviceId)?.tags ?? null, attempts: queries };
    say(`query "${sql}" found ${found.length} device(s), ${deviceId} among them`);
    summary.ok = true;
  } catch (error) {
    summary.errors.push({ step, message: message(error) });
    say(`${step} FAILED: ${message(error)}`);
  } finally {
    stop.abort();
    await closeAll(closers, 10_000);
    if (registered && registry && !options.keepDevice) {
      summary.removed = await within(registry.delete(deviceId), timeoutMs, 'Registry.delete').then(() => true, (error: unknown) => {
        summary.errors.push({ step: 'remove', message: message(error) });
        return false;
      });
    }
    await hub?.close();
  }
  summary.elapsedMs = Date.now() - started;
  return summary;
}

function print(summary: BackendSummary): void {
  const rows: Array<[string, string]> = [
    ['hub', `${summary.hub} (${summary.hostName})`],
    ['device', `${summary.deviceId}, site ${summary.site}, over ${summary.deviceProtocol ?? '-'}`],
    ['registered', summary.registered ? `${summary.registered.status}, tags ${JSON.stringify(summary.registered.tags)}` : '-'],
    ['telemetry', summary.telemetry ? `${summary.telemetry.read.length} of ${summary.telemetry.sent} read through Event Hubs (${summary.telemetry.consumerGroup})` : '-'],
    ['command (C2D)', summary.command ? `${summary.command.receivedByDevice ? 'delivered' : 'not delivered'} over ${summary.serviceTransport}, feedback ${summary.command.feedback?.statusCode ?? 'none'}` : '-'],
    ['direct method', summary.method ? `${summary.method.name} → ${summary.method.status} ${JSON.stringify(summary.method.response)}` : '-'],
    ['query by tag', summary.query ? `${summary.query.deviceIds.length} device(s), ${summary.query.found ? 'found' : 'not found'}` : '-'],
    ['cleanup', summary.removed ? 'device deleted' : 'device kept'],
  ];
  console.log('\nsummary');
  for (const [k, v] of rows) console.log(`  ${k.padEnd(15)} ${v}`);
  for (const e of summary.errors) console.log(`  FAILED ${e.step}: ${e.message}`);
  console.log(`  ${summary.ok ? 'ok' : 'FAILED'} in ${(summary.elapsedMs / 1000).toFixed(1)} s`);
}

async function main(): Promise<void> {
  let options: Options;
  try {
    options = parseOptions(process.argv.slice(2));
  } catch (error) {
    console.error(`${message(error)}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  // With --json, stdout carries the summary alone; the running commentary goes to stderr.
  const say = (line: string): void => void (options.json ? process.stderr : process.stdout).write(`${line}\n`);
  let summary: BackendSummary;
  try {
    summary = await runBackend(options, say);
  } catch (error) {
    // Only starting the embedded hub fails outside a step.
    console.error(`backend failed: ${message(error)}`);
    process.exitCode = 1;
    return;
  }
  if (options.json) process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  else print(summary);
  process.exitCode = summary.ok ? 0 : 1;
}

await main();
