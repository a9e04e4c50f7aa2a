import { connect } from '@switchyard/device';
import { EXIT_OK, EXIT_REFUSED, asSwitchyardError, parseFlags, reportError, usageError } from '../cli.ts';
import { DEVICE_FLAGS, DEVICE_FLAGS_HELP, connectOptionsFromFlags } from '../device-flags.ts';

const USAGE = 'switchyard send --profile FILE --connection-string CS [--ca FILE] [--count N] [--json]';
const HELP = `Usage: ${USAGE}

Connects one device over the protocol its profile gets, sends N telemetry messages, and reports
the decision and the result.

Options:
${DEVICE_FLAGS_HELP}
  --count N                 messages to send (default 1, at most 100000)
  --batch                   send them as one batch (one request over HTTPS, pipelined over AMQP)
  -h, --help                show this help

Exit status: 0 all sent; 1 a send or the connection failed, or the profile cannot be served;
2 usage error.`;

export async function run(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    const flags = parseFlags(argv, { ...DEVICE_FLAGS, count: { type: 'string' }, batch: { type: 'boolean' } }, USAGE);
    if (flags.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    const count = flags.count === undefined ? 1 : Number(flags.count);
    if (!Number.isInteger(count) || count < 1 || count > 100_000) throw usageError('--count', `--count must be an integer 1..100000, got ${JSON.stringify(flags.count)}`);
    const options = await connectOptionsFromFlags(flags, USAGE);

    const started = performance.now();
    const { client, decision, fallbacks } = await connect(options);
    if (!json) {
      console.log(`device ${client.deviceId}: ${decision.protocol} on port ${decision.port}${decision.forced ? ' (forced)' : ''}`);
      for (const why of decision.because) console.log(`  because ${why}`);
      for (const w of decision.warnings) console.log(`  warning: ${w}`);
      for (const f of fallbacks) console.log(`  fell back from ${f.from} to ${f.to}: ${f.reason}`);
    }
    let sent = 0;
    let failure: unknown;
    try {
      const messages = Array.from({ length: count }, (_, i) => ({
        body: { seq: i + 1, sentAt: new Date().toISOString() },
        messageId: `${client.deviceId}-${Date.now()}-${i + 1}`,
        contentType: 'application/json',
        contentEncoding: 'utf-8',
      }));
      if (flags.batch) {
        await client.sendEventBatch(messages);
        sent = count;
      } else {
        for (const m of messages) {
          await client.sendEvent(m);
          sent++;
        }
      }
    } catch (err) {
      failure = err;
    } finally {
      await client.close().catch(() => undefined);
    }
    const durationMs = Math.round(performance.now() - started);
    if (json) {
      const result = { deviceId: client.deviceId, protocol: decision.protocol, port: decision.port, fallbacks: decision.fallbacks, warnings: decision.warnings, fellBack: fallbacks, sent, requested: count, durationMs };
      console.log(JSON.stringify(failure === undefined ? result : { ...result, error: asSwitchyardError(failure).toJSON() }));
    } else {
      console.log(`sent ${sent} of ${count} message(s) in ${durationMs} ms`);
      if (failure !== undefined) reportError('send', failure, false);
    }
    return failure === undefined ? EXIT_OK : EXIT_REFUSED;
  } catch (err) {
    return reportError('send', err, json);
  }
}
