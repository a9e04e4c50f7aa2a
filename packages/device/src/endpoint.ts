// Pointing the five transports at a hub on non-standard ports. Mqtt and Amqp honour
// GatewayHostName=host:port; MqttWs, AmqpWs and Http hard-code 443 and are redirected by an
// https.Agent whose createConnection rewrites the destination while TLS keeps verifying the
// hub's own name (servername stays the original host).
import https from 'node:https';
import type { Duplex } from 'node:stream';
import type { Protocol } from '@switchyard/profile';
import { HttpsAgent } from './https-agent.ts';

export interface Endpoint {
  host?: string;
  ports?: { mqtt?: number; amqp?: number; https?: number };
}

export class RedirectAgent extends HttpsAgent {
  readonly target: { host: string; port: number };

  constructor(target: { host: string; port: number }, options: https.AgentOptions = {}) {
    super({ keepAlive: true, ...options });
    this.target = target;
  }

  override createConnection(options: Record<string, unknown>, callback?: (err: Error | null, socket: Duplex) => void): Duplex {
    const servername = (options.servername as string | undefined) ?? (options.host as string | undefined);
    const redirected = { ...options, host: this.target.host, port: this.target.port, servername };
    // @types/node declares createConnection on http.Agent only loosely; the runtime is https.Agent's.
    return (https.Agent.prototype as unknown as { createConnection: (o: unknown, cb?: unknown) => Duplex }).createConnection.call(this, redirected, callback);
  }
}

/** Whether the transport takes its destination from GatewayHostName (true) or needs an agent. */
export function usesGatewayHostName(protocol: Protocol): boolean {
  return protocol === 'mqtt' || protocol === 'amqp';
}

export interface Route {
  /** The GatewayHostName to put in the connection string; null removes it; undefined keeps it. */
  gatewayHostName?: string | null;
  /** Where a redirecting agent sends the 443-bound transports (WebSockets, HTTPS, file upload). */
  agentTarget?: { host: string; port: number };
}

function splitHostPort(value: string | undefined): { host?: string; port?: number } {
  if (value === undefined) return {};
  const m = /^(.*):(\d+)$/.exec(value);
  return m === null ? { host: value } : { host: m[1]!, port: Number(m[2]) };
}

/**
 * Where `protocol` must dial, from the endpoint option and any GatewayHostName already in the
 * connection string (the local hub hands out "GatewayHostName=127.0.0.1:<mqtt port>").
 */
export function routeFor(protocol: Protocol, hostName: string, gatewayHostName: string | undefined, endpoint: Endpoint | undefined): Route {
  const gw = splitHostPort(gatewayHostName);
  if (usesGatewayHostName(protocol)) {
    const port = (protocol === 'mqtt' ? endpoint?.ports?.mqtt : endpoint?.ports?.amqp) ?? gw.port;
    const host = endpoint?.host ?? gw.host ?? (port === undefined ? undefined : hostName);
    if (host === undefined) return {};
    return { gatewayHostName: port === undefined ? host : `${host}:${port}` };
  }
  // The WebSocket and HTTPS transports put GatewayHostName into a "wss://host:443" URL, where a
  // port breaks it (AmqpWs even crashes the process). Dial through the agent instead and keep the
  // hub name in the URL, so TLS verifies the hub's certificate name.
  const redirect = endpoint !== undefined || gw.port !== undefined;
  if (!redirect) return {};
  return {
    gatewayHostName: null,
    agentTarget: { host: endpoint?.host ?? gw.host ?? hostName, port: endpoint?.ports?.https ?? 443 },
  };
}

/** The agent for HTTPS-based calls (the Http transport, and file upload on every transport). */
export function uploadAgentTarget(hostName: string, gatewayHostName: string | undefined, endpoint: Endpoint | undefined): { host: string; port: number } | undefined {
  return routeFor('https', hostName, gatewayHostName, endpoint).agentTarget;
}

/** Rewrites, adds (string) or removes (null) GatewayHostName in a connection string. */
export function withGatewayHostName(connectionString: string, gateway: string | null): string {
  const parts = connectionString.split(';').filter((p) => p.trim() !== '' && !/^\s*GatewayHostName\s*=/i.test(p));
  if (gateway !== null) parts.push(`GatewayHostName=${gateway}`);
  return parts.join(';');
}
