import type { IncomingMessage } from 'node:http';

export type BodyResult = { ok: true; body: Buffer } | { ok: false; reason: 'too-large' | 'aborted' };

export interface BodyLimits {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /**
   * After the limit is hit the rest is read and thrown away, so the 413 reaches the client
   * instead of being lost to a TCP reset and the connection stays usable; past this many
   * discarded bytes, or `drainMs`, the socket is destroyed.
   */
  drainBytes: number;
  drainMs: number;
}

/**
 * Reads a request body without ever holding more than `maxBytes` of it: a declared
 * Content-Length over the limit is refused before reading, and a chunked body is cut off while
 * streaming. Resolves as soon as the outcome is known so the caller can answer 413 early.
 */
export function readBody(req: IncomingMessage, limits: BodyLimits): Promise<BodyResult> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    let discarded = 0;
    let drainTimer: NodeJS.Timeout | undefined;

    const finish = (result: BodyResult): void => {
      if (settled) return;
      settled = true;
      resolve(result);
    };

    const startDiscarding = (): void => {
      chunks.length = 0;
      drainTimer = setTimeout(() => req.socket.destroy(), limits.drainMs);
      drainTimer.unref();
      finish({ ok: false, reason: 'too-large' });
    };

    const onData = (chunk: Buffer): void => {
      if (drainTimer !== undefined) {
        discarded += chunk.length;
        if (discarded > limits.drainBytes) req.socket.destroy();
        return;
      }
      size += chunk.length;
      if (size > limits.maxBytes) {
        startDiscarding();
        return;
      }
      chunks.push(chunk);
    };

    req.on('data', onData);
    req.on('end', () => {
      if (drainTimer !== undefined) clearTimeout(drainTimer);
      finish({ ok: true, body: Buffer.concat(chunks, size) });
    });
    req.on('close', () => {
      if (drainTimer !== undefined) clearTimeout(drainTimer);
      finish({ ok: false, reason: 'aborted' });
    });
    req.on('error', () => finish({ ok: false, reason: 'aborted' }));

    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > limits.maxBytes) startDiscarding();
  });
}
