import { connect, type C2DMessageData } from '@switchyard/device';
import { EXIT_OK, EXIT_REFUSED, asSwitchyardError, parseFlags, reportError } from '../cli.ts';
import { DEVICE_FLAGS, DEVICE_FLAGS_HELP, connectOptionsFromFlags } from '../device-flags.ts';

const USAGE = 'switchyard listen --profile FILE --connection-string CS [--ca FILE] [--state-dir DIR] [--json]';
const HELP = `Usage: ${USAGE}

Connects one device and prints each cloud-to-device message, then completes it. Over HTTPS it
polls no more often than the profile allows (25 minutes in production), and keeps the time of
the last poll in the state directory so that restarts cannot poll early. Runs until SIGINT or
SIGTERM, then closes the connection cleanly.

Options:
${DEVICE_FLAGS_HELP}
  --state-dir DIR           where the HTTPS poll record is kept (default .switchyard/poll)
  -h, --help                show this help

Exit status: 0 closed on a signal; 1 the connection failed or the profile cannot be served;
2 usage error.`;

function describe(m: C2DMessageData): Record<string, unknown> {
  const text = m.body.toString('utf8');
  const isText = Buffer.from(text, 'utf8').equals(m.body);
  return {
    messageId: m.messageId,
    correlationId: m.correlationId,
    ...(isText ? { body: text } : { bodyBase64: m.body.toString('base64') }),
    properties: m.properties,
    receivedAt: new Date().toISOString(),
  };
}

export async function run(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  const print = (event: string, data: Record<string, unknown>, text: string): void => {
    console.log(json ? JSON.stringify({ event, ...data }) : text);
  };
  try {
    const flags = parseFlags(argv, { ...DEVICE_FLAGS, 'state-dir': { type: 'string' } }, USAGE);
    if (flags.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    const options = await connectOptionsFromFlags(flags, USAGE);
    options.pollStateDir = flags['state-dir'] ?? '.switchyard/poll';

    const stop = new AbortController();
    const onSignal = (): void => stop.abort();
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);

    const { client, decision } = await connect(options);
    print('ready', { deviceId: client.deviceId, protocol: decision.protocol, port: decision.port, pollIntervalSeconds: decision.pollIntervalSeconds, warnings: decision.warnings },
      `device ${client.deviceId} listening over ${decision.protocol}${decision.pollIntervalSeconds !== undefined ? ` (polls every ${decision.pollIntervalSeconds} s at most)` : ''}; Ctrl-C to stop`);
    for (const w of decision.warnings) if (!json) console.log(`  warning: ${w}`);
    client.on('poll', (p) => print('poll', { startedAt: p.startedAt.toISOString(), received: p.received, outcome: p.outcome, nextPollAt: p.nextPollAt.toISOString() },
      `poll at ${p.startedAt.toISOString()}: ${p.outcome}, ${p.received} message(s); next poll not before ${p.nextPollAt.toISOString()}`));
    client.on('disconnected', (d) => print('disconnected', { reason: d.reason, willRetry: d.willRetry }, `disconnected: ${d.reason}${d.willRetry ? ' (reconnecting)' : ''}`));
    client.on('error', (e) => print('error', { error: e.toJSON() }, `error: ${e.message} (${e.code})`));

    let failure: unknown;
    try {
      for await (const message of client.messages({ signal: stop.signal })) {
        const data = describe(message);
        print('message', data, `message ${String(data.messageId ?? '')}: ${String(data.body ?? `<${message.body.length} bytes>`)} ${JSON.stringify(message.properties)}`);
        await message.complete();
      }
    } catch (err) {
      if (!stop.signal.aborted) failure = err;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      await client.close().catch(() => undefined);
    }
    if (failure !== undefined) {
      if (json) console.log(JSON.stringify({ event: 'error', error: asSwitchyardError(failure).toJSON() }));
      else reportError('listen', failure, false);
      return EXIT_REFUSED;
    }
    print('closed', {}, 'closed');
    return EXIT_OK;
  } catch (err) {
    return reportError('listen', err, json);
  }
}
