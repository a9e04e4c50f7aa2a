import { resolve } from 'node:path';
import { createConsoleLogger, startLocalHub } from '@switchyard/local-hub';
import { EXIT_OK, parseFlags, reportError, usageError } from '../cli.ts';

const USAGE = 'switchyard hub [--devices d1,d2,...] [--standard-ports] [--address 127.0.0.N] [--state-dir DIR | --in-memory] [--partitions N] [--consumer-groups g1,g2,...] [--c2d-lock-timeout-ms MS] [--json] [--quiet]';
const HELP = `Usage: ${USAGE}

Runs a local Azure IoT Hub on loopback: MQTT, AMQP and HTTPS over TLS, plus MQTT and AMQP over
WebSockets on the HTTPS port (/$iothub/websocket), and the Event Hubs-compatible built-in endpoint
for @azure/event-hubs on the AMQP port (and /$servicebus/websocket). Runs until SIGINT or SIGTERM.

Options:
  --devices LIST      device ids to create (comma-separated); existing devices keep their keys
  --standard-ports    bind 8883, 5671 and 443 (needs root or CAP_NET_BIND_SERVICE for 443), so the
                      unmodified Azure SDK connects with only the CA set; default: free ports
  --address IP        loopback address to bind; default 127.0.0.1 (use 127.0.0.N to run several
                      hubs on standard ports)
  --state-dir DIR     registry, twins, queued messages and TLS material; default .switchyard/hub
  --in-memory         keep nothing on disk
  --partitions N      partitions of the built-in endpoint (1 to 128); default 4
  --consumer-groups LIST
                      consumer groups to create besides $Default (comma-separated; kept in the
                      state dir)
  --c2d-lock-timeout-ms MS
                      how long a delivered C2D message stays locked before it is delivered again
                      (1 to 300000); default 60000, IoT Hub's fixed lock. Shorter makes the
                      redelivery after a dropped connection quick to test
  --json              print one JSON line when ready: hostName, address, ports, caPath, devices
                      {id: connectionString}, serviceConnectionString, eventHubConnectionString,
                      eventHub {name, partitionIds, consumerGroups, webSocketEndpoint}
  --quiet             log only warnings (to stderr)
  -h, --help          show this help

Exit status: 0 after a clean shutdown; 2 usage error (bad flag, port in use); 1 other failures.`;

function waitForSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolveSignal) => {
    const onSignal = (signal: NodeJS.Signals): void => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
      resolveSignal(signal);
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
}

export async function run(argv: string[]): Promise<number> {
  const json = argv.includes('--json');
  try {
    const flags = parseFlags(
      argv,
      {
        devices: { type: 'string' },
        'standard-ports': { type: 'boolean' },
        address: { type: 'string' },
        'state-dir': { type: 'string' },
        'in-memory': { type: 'boolean' },
        partitions: { type: 'string' },
        'consumer-groups': { type: 'string' },
        'c2d-lock-timeout-ms': { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      USAGE,
    );
    if (flags.help) {
      console.log(HELP);
      return EXIT_OK;
    }
    if (flags['in-memory'] && flags['state-dir'] !== undefined) {
      throw usageError('--state-dir', `--state-dir and --in-memory exclude each other; usage: ${USAGE}`);
    }
    const partitions = flags.partitions === undefined ? undefined : Number(flags.partitions);
    if (partitions !== undefined && (!Number.isInteger(partitions) || partitions < 1 || partitions > 128)) {
      throw usageError('--partitions', `--partitions must be an integer from 1 to 128; usage: ${USAGE}`);
    }
    const lockTimeoutMs = flags['c2d-lock-timeout-ms'] === undefined ? undefined : Number(flags['c2d-lock-timeout-ms']);
    // The range is the hub's to judge (startLocalHub refuses it with CONFIG_INVALID); a flag that
    // is not a whole number is named here.
    if (lockTimeoutMs !== undefined && !Number.isInteger(lockTimeoutMs)) {
      throw usageError('--c2d-lock-timeout-ms', `--c2d-lock-timeout-ms must be a whole number of milliseconds; usage: ${USAGE}`);
    }
    const consumerGroups = (flags['consumer-groups'] ?? '').split(',').map((g) => g.trim()).filter((g) => g !== '');
    const devices = (flags.devices ?? '').split(',').map((d) => d.trim()).filter((d) => d !== '');
    const stateDir = flags['in-memory'] ? undefined : resolve(flags['state-dir'] ?? '.switchyard/hub');

    const hub = await startLocalHub({
      devices,
      ...(stateDir === undefined ? { inMemory: true } : { stateDir }),
      ...(flags.address === undefined ? {} : { address: flags.address }),
      standardPorts: flags['standard-ports'] ?? false,
      logger: createConsoleLogger({ quiet: flags.quiet ?? false }),
      eventHubs: { ...(partitions === undefined ? {} : { partitionCount: partitions }), consumerGroups },
      ...(lockTimeoutMs === undefined ? {} : { c2d: { lockTimeoutMs } }),
    });
    const signal = waitForSignal();
    const connectionStrings = Object.fromEntries(devices.map((id) => [id, hub.deviceConnectionString(id)]));
    if (json) {
      console.log(JSON.stringify({
        hostName: hub.hostName,
        address: hub.address,
        ports: hub.ports,
        caPath: hub.caPath ?? null,
        ...(hub.caPath === undefined ? { ca: hub.ca } : {}),
        stateDir: hub.stateDir ?? null,
        devices: connectionStrings,
        serviceConnectionString: hub.serviceConnectionString,
        eventHubConnectionString: hub.eventHubConnectionString,
        eventHub: {
          name: hub.eventHubs.name,
          partitionIds: hub.eventHubs.partitionIds,
          consumerGroups: hub.eventHubs.consumerGroups(),
          webSocketEndpoint: hub.eventHubs.webSocketEndpoint,
        },
      }));
    } else {
      const lines = [
        `local IoT Hub ${hub.hostName} ready on ${hub.address}: mqtt ${hub.ports.mqtt}, amqp ${hub.ports.amqp}, https+wss ${hub.ports.https}`,
        hub.caPath === undefined ? 'CA (pass as `ca`):\n' + hub.ca.trim() : `CA (pass as \`ca\`): ${hub.caPath}`,
        `state: ${hub.stateDir ?? 'in memory'}`,
        ...devices.map((id) => `device ${id}: ${connectionStrings[id]}`),
        `service: ${hub.serviceConnectionString}`,
        `event hubs (built-in endpoint, ${hub.eventHubs.partitionIds.length} partitions): ${hub.eventHubConnectionString}`,
        hub.ports.https === 443 ? '' : 'MqttWs, AmqpWs and Http dial port 443: give them a redirect agent (see packages/local-hub/README.md) or use --standard-ports.',
        'Ctrl-C stops the hub.',
      ];
      console.log(lines.filter((l) => l !== '').join('\n'));
    }
    const received = await signal;
    await hub.close();
    if (!json) console.error(`switchyard hub: ${received} received, hub closed`);
    return EXIT_OK;
  } catch (err) {
    return reportError('hub', err, json);
  }
}
