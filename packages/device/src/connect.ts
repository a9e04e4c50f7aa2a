// connect(): options → profile → selector decision → transport factory → Azure client with all
// SDK options in one setOptions call → open (with fallback on network failures) → DeviceClient.
import type { ClientRequest } from 'node:http';
import type https from 'node:https';
import { createRequire } from 'node:module';
import azureDevice from 'azure-iot-device';
import type { Client } from 'azure-iot-device';
import { SwitchyardError } from '@switchyard/errors';
import { systemClock } from '@switchyard/time';
import { resolveProfile, type ExactProfile, type ProfileDefinition, type Protocol } from '@switchyard/profile';
import { PROTOCOL_PORTS, select, type Decision } from '@switchyard/selector';
import { DeviceCore } from './core/device-core.ts';
import { guard } from './core/guard.ts';
import { abandonedError, destroyTransportSocket, SocketSet, swallowUnheardRheaErrors } from './links/abandon.ts';
import { directD2CSend, type DirectSend } from './links/amqp-direct-send.ts';
import { requestAmqpHeartbeats } from './links/amqp-heartbeats.ts';
import { gateMqttRedials } from './links/mqtt-redial-gate.ts';
import { AzureClientLink, boundedRetryPolicy, type AzureClientLike, type AzureGeneration, type PollOnce } from './links/azure-client-link.ts';
import { RedirectAgent, routeFor, uploadAgentTarget, usesGatewayHostName, withGatewayHostName } from './endpoint.ts';
import { translateError, httpStatusOf, neverReachedHub } from './errors.ts';
import { HttpsAgent } from './https-agent.ts';
import { Outbox } from './outbox/outbox.ts';
import { parseConnectOptions, type ConnectOptionsInput, type ParsedConnectOptions, type ParsedConnectionString } from './options.ts';
import type { PollOutcome } from './poll-scheduler.ts';
import { loadTransport, quietRheaDisconnects, type ModuleImporter, type TransportConstructor } from './transport-factory.ts';
import type { ClientFor, FallbackEvent, FeaturesOf } from './types.ts';

/**
 * `profile` is a {@link ProfileDefinition} literal (checked by the compiler: an unknown field or a
 * wrong value does not compile, and the declared features narrow the client), the path of a JSON
 * profile file, or left out for SWITCHYARD_PROFILE. A profile read at run time from elsewhere
 * goes through `parseProfile()` first.
 */
export type ConnectOptions<P extends ProfileDefinition | string | undefined = ProfileDefinition | string | undefined> = Omit<ConnectOptionsInput, 'profile'> & {
  profile?: ExactProfile<P>;
};

export interface ConnectResult<C> {
  client: C;
  decision: Decision;
  /** Protocols tried before the one that connected, and why each failed. */
  fallbacks: FallbackEvent[];
}

interface Built {
  azure: AzureClientLike;
  transport: unknown;
  pollOnce?: PollOnce;
  sendDirect?: DirectSend;
  agents: https.Agent[];
  /** Destroys this client's sockets (see links/abandon.ts). */
  abandon: (why: string) => void;
}

/** How long a failed connect waits for the SDK to settle after its sockets were destroyed. */
const SETTLE_AFTER_ABANDON_MS = 1_000;

/** Resolves when `promise` settles or after `ms`, whichever comes first; never rejects. */
function settledWithin(promise: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise.then(
      () => undefined,
      () => undefined,
    ),
    new Promise<void>((resolve) => (timer = setTimeout(resolve, ms))),
  ]).finally(() => clearTimeout(timer));
}

/** Internal seams for tests: which importer loads transport packages. */
export interface ConnectInternals {
  importer?: ModuleImporter;
  env?: NodeJS.ProcessEnv;
}

/**
 * Wraps the http-base request builder so our scheduler learns how each C2D GET ended (Http#receive
 * has no callback). Every telemetry POST passes through it too, so it adds nothing but a test of
 * the method to those: no rest arguments, no closure. (Silent sockets are bounded per socket, by
 * the agent: see build().)
 */
function observedHttpBase(): { base: unknown; pollOnce: (transport: { receive(): void }, timeoutMs: number) => Promise<PollOutcome> } {
  const requireHere = createRequire(import.meta.url);
  const requireFromHttp = createRequire(requireHere.resolve('azure-iot-device-http'));
  type BuildRequest = (method: unknown, path: unknown, headers: unknown, host: unknown, options: unknown, done?: unknown) => ClientRequest;
  const { Http: HttpBase } = requireFromHttp('azure-iot-http-base') as { Http: new () => { buildRequest: BuildRequest } };
  const base = new HttpBase();
  let pending: ((outcome: PollOutcome, err?: unknown) => void) | undefined;
  const original = base.buildRequest;
  base.buildRequest = function observedBuildRequest(this: unknown, method, path, headers, host, options, done) {
    if (method !== 'GET' || typeof path !== 'string' || !/\/messages\/devicebound(\?|$)/.test(path)) return original.call(this, method, path, headers, host, options, done);
    // buildRequest's own overload: without request options, `done` comes fifth.
    const callback = (typeof done === 'function' ? done : options) as (err: unknown, body: unknown, res: { statusCode?: number } | undefined) => void;
    if (typeof callback !== 'function') return original.call(this, method, path, headers, host, options, done);
    const observed = (err: unknown, body: unknown, res: { statusCode?: number } | undefined): void => {
      callback(err, body, res);
      const resolve = pending;
      pending = undefined;
      const status = res?.statusCode ?? httpStatusOf(err);
      resolve?.(err ? (status === 429 ? 'throttled' : status === undefined && neverReachedHub(err) ? 'unreached' : 'failed') : status === 200 ? 'message' : 'empty', err);
    };
    return typeof done === 'function' ? original.call(this, method, path, headers, host, options, observed) : original.call(this, method, path, headers, host, observed);
  };
  const pollOnce = (transport: { receive(): void }, timeoutMs: number): Promise<PollOutcome> =>
    new Promise<PollOutcome>((resolve) => {
      const timer = setTimeout(() => {
        pending = undefined;
        resolve('failed');
      }, timeoutMs);
      pending = (outcome) => {
        clearTimeout(timer);
        resolve(outcome);
      };
      transport.receive();
    });
  return { base, pollOnce };
}

async function build(protocol: Protocol, Transport: TransportConstructor, options: ParsedConnectOptions & { connection: ParsedConnectionString }): Promise<Built> {
  const { connection, endpoint } = options;
  if (!usesGatewayHostName(protocol) && /:\d+$/.test(connection.hostName)) {
    throw new SwitchyardError('CONFIG_INVALID', `connectionString has a port in HostName, which ${protocol} cannot dial (it always uses port 443); keep the hub name in HostName and put the port in endpoint.ports.https`, {
      details: { field: 'connectionString', protocol },
    });
  }
  const route = routeFor(protocol, connection.hostName, connection.gatewayHostName, endpoint);
  const uploadTarget = uploadAgentTarget(connection.hostName, connection.gatewayHostName, endpoint);
  // The Http transport always gets an agent of its own: otherwise it uses Node's global one,
  // whose sockets close() cannot destroy and other code shares.
  // A socket of it that passes no byte for operationTimeoutMs, in use or idle in the pool, is
  // destroyed: a request caught on a keep-alive socket that went silent fails, and the next one
  // opens a new socket. Watched per client, not set as the agent's `timeout`: with that, Node
  // re-creates the socket's timer and its listener on every request (links/silent-sockets.ts).
  const httpsAgent = uploadTarget !== undefined ? new RedirectAgent(uploadTarget) : protocol === 'https' ? new HttpsAgent({ keepAlive: true }) : undefined;
  // WebSocket transports always get an agent: its sockets are the ones close() can destroy.
  const ws = protocol === 'mqtt-ws' || protocol === 'amqp-ws';
  const wsAgent = !ws ? undefined : route.agentTarget !== undefined ? new RedirectAgent(route.agentTarget) : new HttpsAgent({ keepAlive: true });
  const agents = [httpsAgent, wsAgent].filter((a): a is HttpsAgent => a !== undefined);
  const sockets = new SocketSet();
  for (const agent of agents) sockets.watch(agent);
  if (httpsAgent !== undefined) sockets.destroyWhenSilent(httpsAgent, options.operationTimeoutMs, (ms) => abandonedError('https', `no answer within ${ms} ms (operationTimeoutMs)`));
  const gateway = route.gatewayHostName === null ? undefined : route.gatewayHostName ?? connection.gatewayHostName;

  let transport: unknown;
  let pollOnce: PollOnce | undefined;
  let ctor: TransportConstructor = function CapturingTransport(this: unknown, authProvider: unknown) {
    transport = new Transport(authProvider);
    quietRheaDisconnects(transport);
    swallowUnheardRheaErrors(transport);
    // Twice the keep-alive, as MQTT's: a silent connection is dropped within 2 x keepAliveSeconds.
    requestAmqpHeartbeats(transport, options.keepAliveSeconds * 2_000);
    // A connection the hub drops right after it opens is not dialled again at once (mqtt-redial-gate.ts).
    gateMqttRedials(transport, { clock: options.clock ?? systemClock });
    return transport;
  } as unknown as TransportConstructor;
  if (protocol === 'https') {
    const observed = observedHttpBase();
    ctor = function CapturingHttp(this: unknown, authProvider: unknown) {
      transport = new Transport(authProvider, observed.base);
      return transport;
    } as unknown as TransportConstructor;
    pollOnce = () => observed.pollOnce(transport as { receive(): void }, options.operationTimeoutMs);
  }

  let azure: Client;
  if (connection.auth === 'x509') {
    // Client.fromConnectionString drops GatewayHostName for x509=true, so build the provider.
    const provider = new azureDevice.X509AuthenticationProvider({ host: connection.hostName, deviceId: connection.deviceId, ...(gateway === undefined ? {} : { gatewayHostName: gateway }) } as never);
    azure = azureDevice.Client.fromAuthenticationProvider(provider, ctor as never);
  } else {
    const cs = route.gatewayHostName === undefined ? options.connectionString : withGatewayHostName(options.connectionString, route.gatewayHostName);
    azure = azureDevice.Client.fromConnectionString(cs, ctor as never);
  }
  // Nothing may emit 'error' unobserved between here and the wrapper's own listener.
  azure.on('error', () => undefined);

  // One call with everything: setOptions replaces the transport's options, never merges.
  const sdkOptions: Record<string, unknown> = {
    // Http's setOptions never calls back without a receive policy; ours polls by hand.
    http: { receivePolicy: { manualPolling: true, drain: false }, ...(httpsAgent === undefined ? {} : { agent: httpsAgent }) },
  };
  if (options.ca !== undefined) sdkOptions.ca = options.ca;
  if (options.cert !== undefined) sdkOptions.cert = options.cert;
  if (options.key !== undefined) sdkOptions.key = options.key;
  if (options.passphrase !== undefined) sdkOptions.passphrase = options.passphrase;
  sdkOptions.keepalive = options.keepAliveSeconds;
  if (options.productInfo !== undefined) sdkOptions.productInfo = options.productInfo;
  if (options.tokenRenewal !== undefined) sdkOptions.tokenRenewal = options.tokenRenewal;
  if (wsAgent !== undefined) sdkOptions[protocol === 'mqtt-ws' ? 'mqtt' : 'amqp'] = { webSocketAgent: wsAgent };
  await guard(protocol, 'setOptions', () => azure.setOptions(sdkOptions as never), { defaultTimeoutMs: options.connectTimeoutMs });
  const abandon = (why: string): void => {
    const reason = abandonedError(protocol, why);
    destroyTransportSocket(protocol, transport, reason);
    sockets.destroyAll(reason);
  };
  const sendDirect = protocol === 'amqp' || protocol === 'amqp-ws' ? directD2CSend(transport) : undefined;
  return { azure: azure as unknown as Built['azure'], transport, ...(pollOnce === undefined ? {} : { pollOnce }), ...(sendDirect === undefined ? {} : { sendDirect }), agents, abandon };
}

/**
 * Connects a device through the protocol its profile selects. With a literal profile object the
 * client's type offers only the features the profile declares.
 */
export async function connect<const P extends ProfileDefinition | string | undefined = undefined>(options: ConnectOptions<P>, internals: ConnectInternals = {}): Promise<ConnectResult<ClientFor<FeaturesOf<P>>>> {
  const parsed = parseConnectOptions(options);
  const { signal } = parsed;
  if (signal?.aborted) throw new SwitchyardError('ABORTED', 'connect was aborted before it started', { cause: signal.reason });
  const { profile, forceProtocol } = await resolveProfile({ profile: parsed.profile, forceProtocol: parsed.forceProtocol, env: internals.env ?? process.env });
  const decision = select(profile, forceProtocol === undefined ? {} : { forceProtocol });
  const candidates: Protocol[] = [decision.protocol, ...(parsed.fallback ? decision.fallbacks : [])];
  const fallbacks: FallbackEvent[] = [];

  const agents: https.Agent[] = [];
  const destroyAgents = (list: https.Agent[]): void => {
    for (const agent of list) agent.destroy();
  };
  const retryPolicy = boundedRetryPolicy(parsed.reconnectAttempts);
  /** Opens one built Azure client; closes it again if opening fails. */
  const openBuilt = async (protocol: Protocol, built: Built, openSignal?: AbortSignal): Promise<Built> => {
    // Few retries while connecting, so a blocked port fails fast enough to fall back.
    built.azure.setRetryPolicy(boundedRetryPolicy(2));
    try {
      await guard(protocol, 'connect', () => built.azure.open(), { defaultTimeoutMs: parsed.connectTimeoutMs, ...(openSignal === undefined ? {} : { signal: openSignal }) });
    } catch (err) {
      // Nothing of this attempt may outlive the rejection. The SDK would retry a failed open by
      // itself, and over a silent network its close never returns (azure-iot-amqp-base defers a
      // disconnect until the connect finishes): stop the retries, destroy the sockets, then give
      // the SDK a moment to hear of it and clear its own timers.
      built.azure.setRetryPolicy(boundedRetryPolicy(0));
      built.abandon('connect failed');
      await settledWithin(built.azure.close(), SETTLE_AFTER_ABANDON_MS);
      destroyAgents(built.agents);
      const error = translateError(err, { protocol, operation: 'connect' });
      // The operation deadline's wording is about messages that may have reached the hub; a
      // connect attempt has nothing to duplicate.
      if (error.code === 'TIMEOUT' && error.details.operation === 'connect') {
        throw new SwitchyardError('TIMEOUT', `${protocol} connect did not complete within ${String(error.details.timeoutMs)} ms; the attempt was abandoned and its sockets closed`, {
          cause: err,
          details: { protocol, operation: 'connect', timeoutMs: error.details.timeoutMs },
        });
      }
      throw error;
    }
    built.azure.setRetryPolicy(retryPolicy);
    agents.push(...built.agents);
    return built;
  };
  /** Builds and opens one Azure client for `protocol`. */
  const openOne = async (protocol: Protocol, Transport: TransportConstructor, openSignal?: AbortSignal): Promise<Built> => openBuilt(protocol, await build(protocol, Transport, parsed), openSignal);
  const generation = (built: Built): AzureGeneration => ({
    azure: built.azure,
    transport: built.transport,
    abandon: built.abandon,
    ...(built.pollOnce === undefined ? {} : { pollOnce: built.pollOnce }),
    ...(built.sendDirect === undefined ? {} : { sendDirect: built.sendDirect }),
  });

  // Read before any socket opens: an unusable directory fails connect() with STATE_FAILED.
  const outbox = parsed.outbox === undefined ? undefined : await Outbox.open(parsed.outbox);
  if (!parsed.waitForConnection) {
    // parseConnectOptions made sure of an outbox, and of no fallback: the client's protocol is
    // fixed once it is returned.
    const protocol = decision.protocol;
    try {
      const Transport = await loadTransport(protocol, internals.importer);
      // Everything up to here, and the client's own options, is checked without the network.
      const first = await build(protocol, Transport, parsed);
      let attempts = 0;
      const link = new AzureClientLink({
        protocol,
        deviceId: parsed.connection.deviceId,
        ...generation(first),
        opened: false,
        retryPolicy,
        ...(parsed.clock === undefined ? {} : { clock: parsed.clock }),
        rebuild: async () => generation(await openOne(protocol, Transport)),
      });
      const client = new DeviceCore({
        link,
        ...(outbox === undefined ? {} : { outbox }),
        decision,
        initialState: 'connecting',
        operationTimeoutMs: parsed.operationTimeoutMs,
        afterClose: () => destroyAgents(agents.splice(0)),
        ...(parsed.poll === undefined ? {} : { poll: parsed.poll }),
        ...(parsed.pollStateDir === undefined ? {} : { pollStateDir: parsed.pollStateDir }),
        ...(parsed.clock === undefined ? {} : { clock: parsed.clock }),
      });
      // The first attempt opens the client built above; a failed one is gone, so later ones build anew.
      link.connectInBackground(async (attemptSignal) => generation(attempts++ === 0 ? await openBuilt(protocol, first, attemptSignal) : await openOne(protocol, Transport, attemptSignal)), boundedRetryPolicy(Infinity));
      return { client: client as ClientFor<FeaturesOf<P>>, decision, fallbacks };
    } catch (err) {
      await outbox?.close();
      throw translateError(err, { protocol, operation: 'connect' });
    }
  }
  for (let i = 0; i < candidates.length; i++) {
    const protocol = candidates[i]!;
    let built: Built;
    let Transport: Awaited<ReturnType<typeof loadTransport>>;
    try {
      // Inside the try: a missing transport must give the outbox dir's lock back too.
      Transport = await loadTransport(protocol, internals.importer);
      built = await openOne(protocol, Transport, signal);
    } catch (err) {
      const error = translateError(err, { protocol, operation: 'connect' });
      const network = (error.code === 'CONNECT_FAILED' && error.details.failure === 'network') || error.code === 'TIMEOUT';
      const next = candidates[i + 1];
      if (parsed.fallback && network && next !== undefined && !signal?.aborted) {
        const event: FallbackEvent = { from: protocol, to: next, reason: error.message };
        fallbacks.push(event);
        parsed.onFallback?.(event);
        continue;
      }
      await outbox?.close();
      throw error;
    }
    const used: Decision =
      protocol === decision.protocol
        ? decision
        : {
            ...decision,
            protocol,
            port: PROTOCOL_PORTS[protocol],
            fallbacks: decision.fallbacks.filter((p) => p !== protocol && !fallbacks.some((f) => f.from === p)),
            warnings: [...decision.warnings, ...fallbacks.map((f) => `fell back from ${f.from} to ${f.to}: ${f.reason}`)],
          };
    const link = new AzureClientLink({
      protocol,
      deviceId: parsed.connection.deviceId,
      ...generation(built),
      retryPolicy,
      ...(parsed.clock === undefined ? {} : { clock: parsed.clock }),
      rebuild: async () => generation(await openOne(protocol, Transport)),
    });
    const client = new DeviceCore({
      link,
      ...(outbox === undefined ? {} : { outbox }),
      decision: used,
      initialState: 'connected',
      operationTimeoutMs: parsed.operationTimeoutMs,
      afterClose: () => destroyAgents(agents.splice(0)),
      ...(parsed.poll === undefined ? {} : { poll: parsed.poll }),
      ...(parsed.pollStateDir === undefined ? {} : { pollStateDir: parsed.pollStateDir }),
      ...(parsed.clock === undefined ? {} : { clock: parsed.clock }),
    });
    if (fallbacks.length > 0) {
      // Replayed on the next turn, so listeners attached right after `await connect()` see them.
      setImmediate(() => {
        for (const event of fallbacks) client.emit('fallback', event);
      });
    }
    // The core is every feature's client; the profile's literal type narrows what the caller sees.
    return { client: client as ClientFor<FeaturesOf<P>>, decision: used, fallbacks };
  }
  // Unreachable: the loop either returns or throws.
  throw new SwitchyardError('INTERNAL', 'connect ended without a result');
}
