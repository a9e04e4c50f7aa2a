// The front-end on its own HTTPS server (as hub.ts mounts it), for what the assembled hub hides:
// its close() ends keep-alive connections it served, and later requests get 503.
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpsFrontEnd, type HttpsFrontEnd } from '../src/https/index.ts';
import { createHubCore, ensureTlsMaterial, openHubStore, silentLogger, type HubStore, type LocalHubCore } from '../src/internal.ts';
import { waitUntil } from './support/https-helpers.ts';

const HOST = 'frontend-test.azure-devices.net';
let server: https.Server;
let store: HubStore;
let core: LocalHubCore;
let frontEnd: HttpsFrontEnd;
let ca: string;
let port: number;

beforeAll(async () => {
  const tls = ensureTlsMaterial({ hostName: HOST, address: '127.0.0.1' });
  ca = tls.ca;
  store = openHubStore({ inMemory: true });
  core = createHubCore({ hostName: HOST, store, logger: silentLogger });
  frontEnd = createHttpsFrontEnd({ core, service: core, logger: silentLogger });
  server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => frontEnd.handleRequest(req, res));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  port = (server.address() as AddressInfo).port;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  core.close();
  store.close();
});

function get(agent: https.Agent, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string; socketClosed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, servername: HOST, ca, agent, path, headers }, (res) => {
      const socketClosed = new Promise<void>((r) => res.socket.once('close', () => r()));
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, socketClosed }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('createHttpsFrontEnd', () => {
  it('answers a request target that is not an absolute path with 400, not a crash', async () => {
    const agent = new https.Agent({ keepAlive: false });
    try {
      const res = await get(agent, 'http://elsewhere.example/devices');
      expect(res.status).toBe(400);
      expect(JSON.parse(res.body)).toMatchObject({ errorCode: 400004 });
    } finally {
      agent.destroy();
    }
  });

  it('close() ends the keep-alive connections it served, then answers 503', async () => {
    const agent = new https.Agent({ keepAlive: true });
    try {
      const before = await get(agent, '/local/stats', { Authorization: core.serviceToken() });
      expect(before.status).toBe(200);
      await frontEnd.close();
      let closed = false;
      void before.socketClosed.then(() => (closed = true));
      await waitUntil(() => (closed ? true : undefined), 'the keep-alive socket to close', 5_000);
      const after = await get(agent, '/local/stats', { Authorization: core.serviceToken() });
      expect(after.status).toBe(503);
    } finally {
      agent.destroy();
    }
  });
});
