// Etags of registry records and twins, and IoT Hub's If-Match rule for both.
import { randomBytes } from 'node:crypto';
import { HubError } from './errors.ts';

export function newEtag(): string {
  return randomBytes(9).toString('base64');
}

/** Throws PreconditionFailed unless `ifMatch` is `*` or names `current` (quoted or weak forms too). */
export function checkEtag(current: string, ifMatch: string, what: string): void {
  const wanted = ifMatch.trim().replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
  if (wanted !== '*' && wanted !== current) throw new HubError('PreconditionFailed', `The etag in If-Match does not match ${what}; read it again and retry.`);
}
