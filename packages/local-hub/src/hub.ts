// The local hub process: listeners (TLS, WebSocket upgrades on the HTTPS port), the front-ends,
// the core, the store and the built-in endpoint, wired together and closed together. Its options
// and the handle's interface are in hub-api.ts.
import { Agent as HttpsAgent, createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { isIP, type Server as NetServer, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { createServer as createTlsServer, type TLSSocket, type TlsOptions } from 'node:tls';
import { join } from 'node:path';
import { WebSocketServer, createWebSocketStream } from 'ws';
import { SwitchyardError } from '@switchyard/errors';
import { systemClock } from '@switchyard/time';
import { createAmqpFrontEnd } from './amqp/index.ts';
import { createEventHubs, type EventHubsControl, type EventHubsService } from './eventhubs/index.ts';
import { serviceSide, type ServiceSide } from './amqp/service-side.ts';
import type { PolicyName } from './core/policies.ts';
import { createHttpsFrontEnd } from './https/index.ts';
import { createMqttFrontEnd } from './mqtt/index.ts';
import { TypedEmitter, type HubEvents } from './core/events.ts';
import { LocalHubCore, SERVICE_POLICY } from './core/hub-core.ts';
import { HubError } from './core/errors.ts';
import type { MethodRequest, ModuleInput, ModuleRecord, ModuleTwin } from './core/module-types.ts';
import type {
  C2DMessage, C2DSendInput, DeviceAuthentication, DeviceRecord, FrontEnd, HubCounters, HubLogger, HubStats,
  MethodResult, TelemetryFilter, TelemetryRecord, TwinDocument,
} from './core/types.ts';
import { FaultInjector } from './faults/injector.ts';
import { resolveLimits } from './limits.ts';
import { resolveC2DOptions } from './core/c2d-options.ts';
import { wireSafeLogger } from './log-safety.ts';
import { createConsoleLogger } from './logger.ts';
import { openHubStore, type HubStore } from './store/index.ts';
import { ensureTlsMaterial, issueDeviceCertificate, type DeviceCertificate } from './tls/index.ts';
import { AcceptGuard } from './tls/accept-limits.ts';
import type { ConnectionStringProtocol, LocalHub, LocalHubOptions } from './hub-api.ts';

export type { ConnectionStringProtocol, LocalHub, LocalHubOptions } from './hub-api.ts';

export const DEFAULT_HOST_NAME = 'switchyard-local.azure-devices.net';
export const STANDARD_PORTS = { mqtt: 8883, amqp: 5671, https: 443 } as const;
const WEBSOCKET_PATH = '/$iothub/websocket';
// Where @azure/event-hubs opens its WebSocket (its webSocketEndpointPath).
const EVENT_HUBS_WEBSOCKET_PATH = '/$servicebus/websocket';

function validatePort(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 65535) {
    throw new SwitchyardError('CONFIG_INVALID', `${field} must be an integer from 0 to 65535 (0 picks a free port).`, { details: { field } });
  }
  return value;
}

function listen(server: NetServer, port: number, address: string, name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException): void => {
      server.off('listening', onListening);
      const hint = error.code === 'EADDRINUSE'
        ? `is in use; pick another --address (127.0.0.N) or port, or omit --standard-ports`
        : error.code === 'EACCES'
          ? 'needs privileges (ports below 1024 need root or CAP_NET_BIND_SERVICE); omit --standard-ports'
          : `failed: ${error.message}`;
      reject(new SwitchyardError('CONFIG_INVALID', `The ${name} listener on ${address}:${port} ${hint}.`, { cause: error, details: { field: `ports.${name}` } }));
    };
    const onListening = (): void => {
      server.off('error', onError);
      const bound = server.address();
      resolve(typeof bound === 'object' && bound ? bound.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen({ port, host: address, exclusive: true });
  });
}

function closeServer(server: NetServer): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}

class Hub extends TypedEmitter<HubEvents> implements LocalHub {
  hostName: string;
  address: string;
  ports = { mqtt: 0, amqp: 0, https: 0 };
  ca = '';
  caPath: string | undefined;
  stateDir: string | undefined;
  readonly #standardPorts: boolean;
  #core!: LocalHubCore;
  faults!: FaultInjector;
  #store!: HubStore;
  readonly #servers: NetServer[] = [];
  readonly #sockets = new Set<Socket>();
  readonly #frontEnds: FrontEnd[] = [];
  #wss: WebSocketServer | undefined;
  readonly #agents = new Set<HttpsAgent>();
  #acceptGuard: AcceptGuard | undefined;
  #serviceSide: ServiceSide | undefined;
  #closing: Promise<void> | undefined;
  #eventHubs: EventHubsService | undefined;
  #eventHubsControl: EventHubsControl | undefined;

  constructor(options: { hostName: string; address: string; stateDir: string | undefined; standardPorts: boolean }) {
    super();
    this.hostName = options.hostName;
    this.address = options.address;
    this.stateDir = options.stateDir;
    this.#standardPorts = options.standardPorts;
  }

  async start(options: LocalHubOptions, logger: HubLogger, wantedPorts: { mqtt: number; amqp: number; https: number }): Promise<void> {
    const limits = resolveLimits(options.limits);
    const c2d = resolveC2DOptions(options.c2d);
    // The store first: its lock keeps a second hub from rewriting this state dir's certificates.
    this.#store = openHubStore(this.stateDir === undefined ? { inMemory: true } : { stateDir: this.stateDir, logger });
    const tlsMaterial = ensureTlsMaterial({ ...(this.stateDir === undefined ? {} : { stateDir: this.stateDir }), hostName: this.hostName, address: this.address });
    this.ca = tlsMaterial.ca;
    this.caPath = tlsMaterial.caPath;
    const clock = options.clock ?? systemClock;
    const faults = new FaultInjector({ clock, logger });
    this.faults = faults;
    this.#core = new LocalHubCore({
      faults,
      hostName: this.hostName,
      alternateHostNames: ['localhost', '127.0.0.1', this.address],
      store: this.#store,
      logger,
      clock,
      c2d,
    });
    this.#core.on('telemetry', (record) => this.emit('telemetry', record));
    this.#core.on('connected', (info) => this.emit('connected', info));
    this.#core.on('disconnected', (info) => this.emit('disconnected', info));
    this.#core.on('refused', (event) => this.emit('refused', event));
    for (const id of options.devices ?? []) {
      const slash = id.indexOf('/');
      const deviceId = slash < 0 ? id : id.slice(0, slash);
      if (!this.#core.getDevice(deviceId)) this.#core.createDevice(deviceId);
      if (slash >= 0 && !this.#core.getModule(deviceId, id.slice(slash + 1))) this.#core.createModule(deviceId, id.slice(slash + 1));
    }

    const core = this.#core;
    const eventHubs = createEventHubs({
      options: options.eventHubs ?? {},
      hubName: this.hostName.split('.')[0] ?? this.hostName,
      dir: this.stateDir === undefined ? undefined : join(this.stateDir, 'eventhubs'),
      hosts: [...new Set([this.address, 'localhost', '127.0.0.1', this.hostName])],
      // IoT Hub's policies with ServiceConnect may read the built-in endpoint.
      policies: (['iothubowner', 'service'] as const).flatMap((name) => {
        const key = core.policyKey(name);
        return key === undefined ? [] : [{ name, key }];
      }),
      logger,
      clock,
      deviceInfo: (deviceId) => {
        const device = core.deviceIdentity(deviceId);
        return device && { authType: device.authType === 'sas' ? 'sas' : 'x509', generationId: device.generationId };
      },
    });
    this.#eventHubs = eventHubs;
    core.onTelemetry((record) => eventHubs.accept(record));
    const service = serviceSide({ core, clock, hostName: this.hostName, ...(options.service === undefined ? {} : { options: options.service }) });
    this.#serviceSide = service;
    // Token expiry must be judged by the same clock that authenticated the token.
    const mqtt = createMqttFrontEnd({ core, logger, store: this.#store, clock, faults, limits: { connectTimeoutMs: limits.preAuthTimeoutMs } });
    const amqp = createAmqpFrontEnd({
      core,
      logger,
      clock,
      faults,
      openTimeoutMs: limits.preAuthTimeoutMs,
      preAuthTimeoutMs: limits.preAuthTimeoutMs,
      frameLimits: limits,
      route: eventHubs.route,
      service: service.endpoints,
    });
    const https = createHttpsFrontEnd({
      core,
      service: core,
      logger,
      faults,
      onFileUploaded: (upload) => service.fileUploaded(upload),
      consumerGroups: {
        list: () => eventHubs.endpoint.consumerGroups(),
        create: (name) => eventHubs.endpoint.createConsumerGroup(name),
        delete: (name) => eventHubs.endpoint.deleteConsumerGroup(name),
      },
    });
    this.#frontEnds.push(mqtt, amqp, https);

    const tlsOptions: TlsOptions = {
      cert: tlsMaterial.cert,
      key: tlsMaterial.key,
      minVersion: 'TLSv1.2',
      // X.509 thumbprint devices present self-signed certificates that no CA vouches for, which is
      // how IoT Hub treats them too: the TLS layer only proves the client holds the key, and the
      // core decides by comparing the certificate's thumbprint with the registry. So the server
      // asks for a certificate but does not chain-verify it. (Clients always verify the hub.)
      requestCert: true,
      rejectUnauthorized: false,
    };

    const mqttServer = createTlsServer(tlsOptions, (socket) => {
      socket.setNoDelay(true);
      mqtt.handleConnection(socket, { protocol: 'mqtt', tlsSocket: socket });
    });
    const amqpServer = createTlsServer(tlsOptions, (socket) => {
      socket.setNoDelay(true);
      amqp.handleTlsSocket(socket);
    });
    // Every HTTPS request authenticates in its headers, so the headers deadline is the pre-auth
    // one; Node checks it every connectionsCheckingInterval, which must therefore be finer.
    const httpsServer: HttpsServer = createHttpsServer({
      ...tlsOptions,
      headersTimeout: limits.preAuthTimeoutMs,
      requestTimeout: Math.max(300_000, limits.preAuthTimeoutMs),
      connectionsCheckingInterval: Math.max(10, Math.min(30_000, Math.floor(limits.preAuthTimeoutMs / 4))),
    }, (req, res) => https.handleRequest(req, res));
    httpsServer.keepAliveTimeout = 30_000;

    // Frames of mqtt.js are tiny and many (one MQTT packet spans several), so the WebSocket is
    // bridged as a byte stream; the payload cap only bounds a single frame.
    const wss = new WebSocketServer({
      noServer: true,
      maxPayload: 4 * 1024 * 1024,
      handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('AMQPWSB10') ? 'AMQPWSB10' : false),
    });
    this.#wss = wss;
    httpsServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const path = (req.url ?? '').split('?')[0];
      if (path !== WEBSOCKET_PATH && path !== EVENT_HUBS_WEBSOCKET_PATH) {
        socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
        return;
      }
      wss.handleUpgrade(req, socket, head, (ws) => {
        // A malformed frame is reported as an 'error' on the WebSocket; unheard, it would end the
        // process (the fuzz suite found this on a refused subprotocol followed by garbage).
        ws.on('error', (error: Error) => logger.info('websocket error', { error: error.message }));
        if (ws.protocol === 'mqtt' && path === WEBSOCKET_PATH) {
          const stream = createWebSocketStream(ws);
          mqtt.handleConnection(stream, { protocol: 'mqtt-ws', tlsSocket: req.socket as TLSSocket });
        } else if (ws.protocol === 'AMQPWSB10') {
          amqp.handleWebSocket(ws, req.socket as TLSSocket);
        } else {
          logger.warn('websocket refused: no supported subprotocol', { offered: req.headers['sec-websocket-protocol'] ?? '' });
          ws.close(1002, path === WEBSOCKET_PATH ? 'subprotocol must be mqtt or AMQPWSB10' : 'subprotocol must be AMQPWSB10');
        }
      });
    });

    const servers: Array<[NetServer, 'mqtt' | 'amqp' | 'https']> = [[mqttServer, 'mqtt'], [amqpServer, 'amqp'], [httpsServer, 'https']];
    const acceptGuard = new AcceptGuard(limits, logger);
    this.#acceptGuard = acceptGuard;
    for (const [server, name] of servers) {
      this.#servers.push(server);
      server.on('connection', (socket: Socket) => {
        this.#sockets.add(socket);
        socket.once('close', () => this.#sockets.delete(socket));
      });
      // A failed handshake (a client that distrusts the CA, a port scanner) is the client's
      // problem; it must not reach the process as an unhandled error. The guard logs it.
      acceptGuard.attach(server, name);
      server.on('error', (error: Error) => logger.warn('listener error', { listener: name, error: error.message }));
    }
    this.ports.mqtt = await listen(mqttServer, wantedPorts.mqtt, this.address, 'mqtt');
    this.ports.amqp = await listen(amqpServer, wantedPorts.amqp, this.address, 'amqp');
    this.ports.https = await listen(httpsServer, wantedPorts.https, this.address, 'https');
    this.#eventHubsControl = eventHubs.control({ connectionString: this.eventHubConnectionString, webSocketEndpoint: `https://${this.address}:${this.ports.https}` });
    logger.info('local hub ready', { hostName: this.hostName, address: this.address, ports: this.ports, stateDir: this.stateDir ?? null });
  }

  get serviceConnectionString(): string {
    return this.policyConnectionString(SERVICE_POLICY);
  }

  policyConnectionString(policy: PolicyName): string {
    const key = this.#core.policyKey(policy);
    if (key === undefined) throw new SwitchyardError('CONFIG_INVALID', `'${String(policy)}' is not one of IoT Hub's built-in policies (iothubowner, service, device, registryRead, registryReadWrite).`, { details: { field: 'policy' } });
    // As for devices: on the standard ports azure-iothub dials HostName itself (5671 and 443), so
    // the address is the host, and the hub accepts it as a SAS audience.
    const host = this.#standardPorts && this.ports.https === STANDARD_PORTS.https ? this.address : this.hostName;
    return `HostName=${host};SharedAccessKeyName=${policy};SharedAccessKey=${key}`;
  }

  get eventHubConnectionString(): string {
    const name = this.#eventHubs?.endpoint.name ?? '';
    // On 5671 the port is left out, so the same string also reaches WebSockets on 443.
    const host = this.ports.amqp === STANDARD_PORTS.amqp ? this.address : `${this.address}:${this.ports.amqp}`;
    return `Endpoint=sb://${host}/;SharedAccessKeyName=${SERVICE_POLICY};SharedAccessKey=${this.#core.serviceKey};EntityPath=${name}`;
  }

  get eventHubs(): EventHubsControl {
    if (!this.#eventHubsControl) throw new SwitchyardError('CONFIG_INVALID', 'The hub has not started.', { details: { field: 'eventHubs' } });
    return this.#eventHubsControl;
  }

  deviceConnectionString(deviceId: string, options: { protocol?: ConnectionStringProtocol } = {}): string {
    const slash = deviceId.indexOf('/');
    if (slash >= 0) return this.moduleConnectionString(deviceId.slice(0, slash), deviceId.slice(slash + 1), options);
    const device = this.#core.getDevice(deviceId);
    if (!device) throw new SwitchyardError('DEVICE_NOT_FOUND', `Device '${deviceId}' is not registered; create it first (createDevice or --devices).`, { details: { field: 'deviceId' } });
    if (device.authentication.type !== 'sas') {
      throw new SwitchyardError('CONFIG_INVALID', `Device '${deviceId}' uses X.509; connect with HostName=${this.address}:${this.ports.mqtt};DeviceId=${deviceId};x509=true and its certificate.`, { details: { field: 'deviceId' } });
    }
    return this.#connectionString(`DeviceId=${deviceId};SharedAccessKey=${device.authentication.primaryKey}`, options.protocol ?? 'mqtt');
  }

  moduleConnectionString(deviceId: string, moduleId: string, options: { protocol?: ConnectionStringProtocol } = {}): string {
    const module = this.#core.getModule(deviceId, moduleId);
    if (!module) throw new SwitchyardError('DEVICE_NOT_FOUND', `Module '${moduleId}' of device '${deviceId}' is not registered; create it first (createModule or --devices ${deviceId}/${moduleId}).`, { details: { field: 'moduleId' } });
    // ModuleClient.fromConnectionString takes only SAS keys (it throws NotImplementedError otherwise).
    if (module.authentication.type !== 'sas') {
      throw new SwitchyardError('CONFIG_INVALID', `Module '${moduleId}' of device '${deviceId}' uses X.509, which the Azure ModuleClient does not support; register it with SAS keys.`, { details: { field: 'moduleId' } });
    }
    return this.#connectionString(`DeviceId=${deviceId};ModuleId=${moduleId};SharedAccessKey=${module.authentication.primaryKey}`, options.protocol ?? 'mqtt');
  }

  #connectionString(credentials: string, protocol: ConnectionStringProtocol): string {
    if (this.#standardPorts && this.ports.https === STANDARD_PORTS.https) {
      // On the standard ports one string serves all five transports: each dials HostName on its
      // own port (Http ignores GatewayHostName, and a GatewayHostName with a port breaks the other
      // four), so HostName is the address. SAS audiences then name the address, which the hub
      // accepts, and the server certificate covers it.
      return `HostName=${this.address};${credentials}`;
    }
    if (protocol === 'mqtt' || protocol === 'amqp') {
      return `HostName=${this.hostName};GatewayHostName=${this.address}:${this.ports[protocol]};${credentials}`;
    }
    return `HostName=${this.hostName};${credentials}`;
  }

  redirectAgent(): HttpsAgent {
    const target = { host: this.address, port: this.ports.https };
    class RedirectAgent extends HttpsAgent {
      override createConnection(options: Record<string, unknown>, callback?: (err: Error | null, socket: Duplex) => void): Duplex {
        // servername stays the original host, so the certificate is still checked against HostName.
        const servername = typeof options['servername'] === 'string' ? options['servername'] : (options['host'] as string | undefined);
        const redirected = { ...options, ...target, ...(servername && isIP(servername) === 0 ? { servername } : {}) };
        return (HttpsAgent.prototype as unknown as { createConnection(o: unknown, cb?: unknown): Duplex }).createConnection.call(this, redirected, callback);
      }
    }
    const agent = new RedirectAgent({ keepAlive: true });
    this.#agents.add(agent);
    return agent;
  }

  serviceToken(ttlSeconds?: number): string {
    return this.#core.serviceToken(ttlSeconds);
  }

  createDevice(deviceId: string, options?: { authentication?: DeviceAuthentication; status?: 'enabled' | 'disabled' }): DeviceRecord {
    return this.#core.createDevice(deviceId, options);
  }
  getDevice(deviceId: string): DeviceRecord | undefined { return this.#core.getDevice(deviceId); }
  listDevices(): DeviceRecord[] { return this.#core.listDevices(); }
  removeDevice(deviceId: string): void { this.#core.removeDevice(deviceId); }
  createModule(deviceId: string, moduleId: string, options?: ModuleInput): ModuleRecord { return this.#core.createModule(deviceId, moduleId, options); }
  getModule(deviceId: string, moduleId: string): ModuleRecord | undefined { return this.#core.getModule(deviceId, moduleId); }
  listModules(deviceId: string): ModuleRecord[] { return this.#core.listModules(deviceId); }
  removeModule(deviceId: string, moduleId: string): void { this.#core.removeModule(deviceId, moduleId); }
  readModuleTwin(deviceId: string, moduleId: string): ModuleTwin { return this.#core.readModuleTwin(deviceId, moduleId); }
  updateModuleDesired(deviceId: string, moduleId: string, patch: Record<string, unknown>): ModuleTwin { return this.#core.updateModuleDesired(deviceId, moduleId, patch); }
  invokeModuleMethod(deviceId: string, moduleId: string, request: MethodRequest): Promise<MethodResult> { return this.#core.invokeModuleMethod(deviceId, moduleId, request); }
  sendC2D(deviceId: string, input: C2DSendInput): C2DMessage { return this.#core.sendC2D(deviceId, input); }
  invokeMethod(deviceId: string, request: { methodName: string; payload?: unknown; responseTimeoutInSeconds?: number; connectTimeoutInSeconds?: number }): Promise<MethodResult> {
    return this.#core.invokeMethod(deviceId, request);
  }
  updateDesired(deviceId: string, patch: Record<string, unknown>): TwinDocument & { deviceId: string; etag: string; version: number } {
    return this.#core.updateDesired(deviceId, patch);
  }
  readTwin(deviceId: string): TwinDocument & { deviceId: string; etag: string; version: number } { return this.#core.readTwin(deviceId); }
  telemetry(filter?: TelemetryFilter): TelemetryRecord[] { return this.#core.telemetry(filter); }
  onTelemetry(listener: (record: TelemetryRecord) => void): () => void { return this.#core.onTelemetry(listener); }
  stats(): HubStats { return this.#core.stats(); }
  counters(deviceId: string): HubCounters { return this.#core.counters(deviceId); }
  issueDeviceCertificate(deviceId: string): DeviceCertificate { return issueDeviceCertificate(deviceId); }

  close(): Promise<void> {
    this.#closing ??= this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    // Stop accepting, cut connections whole, and only then end what sessions remain. Kicking
    // sessions first would detach AMQP links one by one (detach-forced), which leaves
    // azure-iot-amqp-base wedged for ~45 s instead of reconnecting to a restarted hub.
    const serversClosed = this.#servers.map((s) => closeServer(s));
    this.#core?.beginClose();
    this.faults?.close();
    await Promise.all(this.#frontEnds.map((f) => f.close().catch(() => undefined)));
    this.#serviceSide?.close();
    this.#core?.close();
    for (const client of this.#wss?.clients ?? []) client.terminate();
    this.#wss?.close();
    for (const agent of this.#agents) agent.destroy();
    for (const server of this.#servers) (server as Partial<HttpsServer>).closeAllConnections?.();
    for (const socket of this.#sockets) socket.destroy();
    this.#acceptGuard?.close();
    await Promise.all(serversClosed);
    this.#eventHubs?.close();
    this.#store?.close();
    this.removeAllListeners();
  }
}

/** Starts a local IoT Hub: TLS listeners for MQTT, AMQP and HTTPS (with both WebSocket flavours). */
export async function startLocalHub(options: LocalHubOptions = {}): Promise<LocalHub> {
  const address = options.address ?? '127.0.0.1';
  if (isIP(address) === 0) throw new SwitchyardError('CONFIG_INVALID', `address '${address}' is not an IP address; use a loopback address such as 127.0.0.1 or 127.0.0.2.`, { details: { field: 'address' } });
  const hostName = (options.hostName ?? DEFAULT_HOST_NAME).toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(hostName)) {
    throw new SwitchyardError('CONFIG_INVALID', `hostName '${hostName}' is not a DNS name such as myhub.azure-devices.net.`, { details: { field: 'hostName' } });
  }
  const base = options.standardPorts ? STANDARD_PORTS : { mqtt: 0, amqp: 0, https: 0 };
  const ports = {
    mqtt: validatePort(options.ports?.mqtt ?? base.mqtt, 'ports.mqtt'),
    amqp: validatePort(options.ports?.amqp ?? base.amqp, 'ports.amqp'),
    https: validatePort(options.ports?.https ?? base.https, 'ports.https'),
  };
  const stateDir = options.inMemory ? undefined : options.stateDir;
  const hub = new Hub({ hostName, address, stateDir, standardPorts: options.standardPorts ?? false });
  try {
    await hub.start(options, wireSafeLogger(options.logger ?? createConsoleLogger({ quiet: true })), ports);
  } catch (error) {
    await hub.close();
    if (error instanceof HubError) throw new SwitchyardError('CONFIG_INVALID', error.message, { cause: error, details: { field: 'devices' } });
    throw error;
  }
  return hub;
}
