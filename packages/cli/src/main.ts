#!/usr/bin/env node
// The `switchyard` command line. Commands are imported only when run, so `explain` never loads
// the local hub or the Azure transports.
import { runCommand, type CommandEntry } from './cli.ts';

// Adding a command: one line here, and a module src/commands/<name>.ts exporting run(argv).
const COMMANDS: Record<string, CommandEntry> = {
  explain: { summary: 'show which protocol a capability profile gets, and why', load: () => import('./commands/explain.ts') },
  hub: { summary: 'run a local IoT Hub (MQTT, AMQP, HTTPS, WebSockets) on loopback', load: () => import('./commands/hub.ts') },
  send: { summary: 'connect a device over the protocol its profile gets and send telemetry', load: () => import('./commands/send.ts') },
  listen: { summary: 'connect a device and print its cloud-to-device messages', load: () => import('./commands/listen.ts') },
  schema: { summary: 'print the capability profile JSON Schema', load: () => import('./commands/schema.ts') },
};

// A reader that stops early (`| head`) is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

process.exitCode = await runCommand(COMMANDS, process.argv.slice(2));
