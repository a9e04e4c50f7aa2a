// The hub's defences against hostile peers, as one set of documented options with safe defaults.
// Every front-end reads its limits from here, so the README's table and the code cannot drift.
import { readFileSync } from 'node:fs';
import { SwitchyardError } from '@switchyard/errors';

export interface HubLimits {
  /**
   * Largest AMQP frame accepted, in bytes, and the max-frame-size the hub advertises in its open.
   * A frame that declares more is refused when its 4-byte size arrives, before any of it is
   * buffered. Default 262,144 (256 KiB); at least 512, the AMQP minimum.
   */
  maxFrameBytes: number;
  /** Largest AMQP message (all transfer frames of one delivery), in bytes. Default 1 MiB. */
  maxMessageBytes: number;
  /**
   * AMQP decoding budget: the most elements one list, map or array may declare, and the most
   * values one frame or one message may hold in total. Checked before the AMQP library decodes
   * anything. Default 65,536.
   */
  maxArrayElements: number;
  /** From TCP accept to a finished TLS handshake, on every port. Default 10,000 ms. */
  tlsHandshakeTimeoutMs: number;
  /**
   * From a finished TLS handshake to an authenticated device: MQTT CONNECT, AMQP CBS put-token or
   * X.509 attach, HTTPS request headers (each request authenticates in them). Default 30,000 ms.
   */
  preAuthTimeoutMs: number;
  /**
   * Open TCP connections one source address may hold across the three listeners; the next one is
   * closed at once. Default: half this process's open-file limit, from 64 to 4,096 (512 when the
   * limit cannot be read), so one source can never take every file descriptor.
   */
  maxConnectionsPerSource: number;
}

const FALLBACK_PER_SOURCE = 512;

/** The soft RLIMIT_NOFILE, where the platform shows it (Linux's /proc); undefined elsewhere. */
function openFileLimit(): number | undefined {
  try {
    const match = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}

export function defaultMaxConnectionsPerSource(): number {
  return perSourceCapFor(openFileLimit());
}

/** Half of `fileLimit` descriptors, from 64 to 4,096; 512 when the limit is unknown. */
export function perSourceCapFor(fileLimit: number | undefined): number {
  if (fileLimit === undefined || !Number.isFinite(fileLimit)) return FALLBACK_PER_SOURCE;
  return Math.min(4096, Math.max(64, Math.floor(fileLimit / 2)));
}

export const DEFAULT_LIMITS: Readonly<Omit<HubLimits, 'maxConnectionsPerSource'>> = Object.freeze({
  maxFrameBytes: 256 * 1024,
  maxMessageBytes: 1024 * 1024,
  maxArrayElements: 65_536,
  tlsHandshakeTimeoutMs: 10_000,
  preAuthTimeoutMs: 30_000,
});

// Frame sizes at or above 0x414d5150 ("AMQP" read as a size) would make a misplaced protocol
// header look like a legal frame; 64 MiB keeps far below that.
const RANGES: Record<keyof HubLimits, [number, number]> = {
  maxFrameBytes: [512, 64 * 1024 * 1024],
  maxMessageBytes: [1, 256 * 1024 * 1024],
  maxArrayElements: [1, 16 * 1024 * 1024],
  tlsHandshakeTimeoutMs: [1, 2_147_483_647],
  preAuthTimeoutMs: [1, 2_147_483_647],
  maxConnectionsPerSource: [1, 1_000_000],
};

/** Fills in defaults and validates; throws CONFIG_INVALID naming the field. */
export function resolveLimits(partial: Partial<HubLimits> = {}): HubLimits {
  const limits: HubLimits = { ...DEFAULT_LIMITS, maxConnectionsPerSource: defaultMaxConnectionsPerSource(), ...stripUndefined(partial) };
  for (const key of Object.keys(RANGES) as Array<keyof HubLimits>) {
    const value = limits[key];
    const [min, max] = RANGES[key];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      throw new SwitchyardError('CONFIG_INVALID', `limits.${key} must be an integer from ${min} to ${max}.`, { details: { field: `limits.${key}` } });
    }
  }
  return limits;
}

function stripUndefined(partial: Partial<HubLimits>): Partial<HubLimits> {
  return Object.fromEntries(Object.entries(partial).filter(([, v]) => v !== undefined)) as Partial<HubLimits>;
}
