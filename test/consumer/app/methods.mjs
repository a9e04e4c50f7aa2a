// Direct methods from the consumer's side: the backend's azure-iothub Client invokes a method on
// a device of connect() over AMQP and on an identity of each gateway engine, and each answers with
// what it was sent. Run from the installed tarballs, whose node_modules hold several copies of rhea
// (the hub's and @azure/event-hubs' 3.x hoisted, 1.0.24 nested per Azure package): an answer built
// with one copy and sent on a connection of another never reaches the hub. One JSON line per client.
import { randomUUID } from 'node:crypto';
import { silentLogger, startLocalHub } from '@switchyard/local-hub';
import { connect } from '@switchyard/device';
import { createGateway } from '@switchyard/gateway';
import iothub from 'azure-iothub';

const hub = await startLocalHub({ inMemory: true, logger: silentLogger });
const service = iothub.Client.fromConnectionString(hub.serviceConnectionString);
// invokeDeviceMethod goes over the REST API; the Client constructor has just set its REST options.
service._restApiClient.setOptions({ ca: hub.ca, http: { agent: hub.redirectAgent() } });

const echo = (request) => ({ status: 200, payload: { echo: request.payload } });

/** Invokes `ping` once the device listens (connectTimeoutInSeconds), and prints what came back. */
async function invoke(client, deviceId, errors) {
  const sent = randomUUID();
  let line;
  try {
    const { result } = await service.invokeDeviceMethod(deviceId, { methodName: 'ping', payload: sent, connectTimeoutInSeconds: 30, responseTimeoutInSeconds: 15 });
    line = { client, status: result.status, echoed: result.payload?.echo === sent };
  } catch (err) {
    line = { client, error: err.message };
  }
  console.log(JSON.stringify({ ...line, errors }));
}

try {
  {
    hub.createDevice('m-connect');
    const { client } = await connect({
      connectionString: hub.deviceConnectionString('m-connect'),
      ca: hub.ca,
      endpoint: { host: hub.address, ports: hub.ports },
      forceProtocol: 'amqp',
      profile: { features: ['methods'] },
    });
    const errors = [];
    client.on('error', (err) => errors.push(err.message));
    client.onMethod('ping', echo);
    await invoke('connect-amqp', 'm-connect', errors);
    await client.close();
  }

  for (const engine of ['lean', 'azure-client']) {
    const deviceId = `m-${engine}`;
    hub.createDevice(deviceId);
    const gateway = await createGateway({
      protocol: 'amqp',
      engine,
      ca: hub.ca,
      endpoint: { host: hub.address, port: hub.ports.amqp },
      identities: [{ deviceId, connectionString: hub.deviceConnectionString(deviceId) }],
    });
    const errors = [];
    gateway.on('identity-error', ({ error }) => errors.push(error.message));
    await gateway.open();
    gateway.get(deviceId).device.onMethod('ping', echo);
    await invoke(`gateway-${engine}`, deviceId, errors);
    await gateway.close();
  }
} finally {
  await hub.close();
}
