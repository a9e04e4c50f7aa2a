// Plain HTTPS requests against a local hub, with the hub's CA as `ca` (verification stays on).
import https from 'node:https';
import type { LocalHub } from '../../src/index.ts';
import { waitFor } from './azure-clients.ts';

export interface HubResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
  json(): unknown;
}

export interface RequestSpec {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
  /** Write the body in pieces (Transfer-Encoding: chunked), as the Azure SDK does. */
  chunks?: Buffer[];
  /** X.509 client credentials. */
  cert?: string;
  key?: string;
  timeoutMs?: number;
}

export function hubRequest(hub: LocalHub, spec: RequestSpec): Promise<HubResponse> {
  return new Promise((resolve, reject) => {
    const req = https.request(
      {
        host: hub.address,
        port: hub.ports.https,
        servername: hub.hostName,
        method: spec.method,
        path: spec.path,
        headers: { Host: hub.hostName, ...spec.headers },
        ca: hub.ca,
        ...(spec.cert ? { cert: spec.cert, key: spec.key } : {}),
        // A fresh connection per request keeps one test's socket state out of the next.
        agent: false,
        timeout: spec.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const body = Buffer.concat(chunks);
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, json: () => JSON.parse(body.toString('utf8')) as unknown });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${spec.method} ${spec.path} timed out`)));
    req.on('error', reject);
    if (spec.chunks) {
      for (const c of spec.chunks) req.write(c);
      req.end();
    } else {
      req.end(spec.body);
    }
  });
}

export const API = 'api-version=2021-04-12';

export function serviceHeaders(hub: LocalHub, extra: Record<string, string> = {}): Record<string, string> {
  return { Authorization: hub.serviceToken(), 'Content-Type': 'application/json', ...extra };
}

/** `waitFor` with the description first, as these suites read best. */
export function waitUntil<T>(probe: () => T | undefined | Promise<T | undefined>, what: string, ms = 10_000): Promise<T> {
  return waitFor(probe, ms, what);
}
