// A local hub in its own process for the memory probe, so the hub's heap and sockets are not
// charged to the identities being measured. Prints one JSON line when ready; stops when its
// parent's stdin closes.
import { startLocalHub, silentLogger } from '@switchyard/local-hub';

const count = Number(process.argv[2] ?? '1');
const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
const connectionStrings: string[] = [];
for (let i = 0; i < count; i++) {
  const deviceId = `mem-${String(i).padStart(4, '0')}`;
  hub.createDevice(deviceId);
  connectionStrings.push(hub.deviceConnectionString(deviceId, { protocol: 'amqp' }));
}
process.stdout.write(JSON.stringify({ address: hub.address, port: hub.ports.amqp, ca: hub.ca, connectionStrings }) + '\n');

const stop = async (): Promise<void> => {
  await hub.close();
  process.exit(0);
};
process.stdin.on('end', () => void stop());
process.stdin.resume();
