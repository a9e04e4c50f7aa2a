// IoT Hub's own limits and C2D rules (iothub-facts.md §6 and C.3), which every part of the core
// enforces. The hub's network-hardening limits are elsewhere (src/limits.ts).

export const LIMITS = {
  telemetryBytes: 256 * 1024,
  c2dBytes: 64 * 1024,
  methodPayloadBytes: 128 * 1024,
  c2dQueueDepth: 50,
  c2dLockMs: 60_000,
  c2dDefaultTtlSeconds: 3600,
  c2dMaxTtlSeconds: 2 * 24 * 3600,
  maxDeliveryCount: 10,
  methodDefaultResponseTimeoutSeconds: 30,
  methodMaxTimeoutSeconds: 300,
} as const;

/** The one shared access policy the hub has; its key signs service connection strings. */
export const SERVICE_POLICY = 'iothubowner';
