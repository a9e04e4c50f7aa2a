// Azure SDK errors as SwitchyardErrors: the device package's translation (one mapping for the
// project), with the identity named, since one gateway reports for many devices.
import { SwitchyardError, isSwitchyardError } from '@switchyard/errors';
import { translateError } from '@switchyard/device/internal';
import type { Protocol } from '@switchyard/profile';

export function translateAzureError(err: unknown, context: { deviceId?: string; operation: string; protocol?: Protocol }): SwitchyardError {
  if (isSwitchyardError(err)) return err;
  const translated = translateError(err, { operation: context.operation, ...(context.protocol === undefined ? {} : { protocol: context.protocol }) });
  if (context.deviceId === undefined) return translated;
  return new SwitchyardError(translated.code, `identity ${context.deviceId}: ${translated.message}`, {
    cause: translated.cause,
    details: { ...translated.details, deviceId: context.deviceId },
    retryable: translated.retryable,
  });
}
