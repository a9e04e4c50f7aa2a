// An error the client hands out must carry no secret anywhere a person or a logger can reach:
// not in its message, its enumerable fields, its inspected form, nor its cause chain. The Azure
// SDK attaches whole HTTP requests and responses (with the Authorization header) and TLS options
// (with the private key) to its errors; those must not survive into ours.
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { SwitchyardError } from '../src/index.ts';

const SIG = 'S3cr3tS1gnature%3D';
const KEY_BODY = 'MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQ';
const PEM = `-----BEGIN PRIVATE KEY-----\n${KEY_BODY}\n-----END PRIVATE KEY-----`;

function azureLikeError(): Error {
  const err = Object.assign(new Error(`Unauthorized (sig=${SIG})`), {
    name: 'UnauthorizedError',
    response: { statusCode: 401, req: { headers: { authorization: `SharedAccessSignature sr=hub%2Fdevices%2Fd1&sig=${SIG}&se=1` } } },
    transportError: Object.assign(new Error('401'), { options: { key: PEM, cert: 'CERT' }, statusCode: 401 }),
  });
  return err;
}

describe('a SwitchyardError built on a foreign error', () => {
  const err = new SwitchyardError('AUTH_FAILED', 'the hub refused the credentials', { cause: azureLikeError() });
  const everything = [inspect(err, { depth: Infinity, showHidden: true }), JSON.stringify(err), String(err), err.stack ?? ''].join('\n');

  it('shows no signature and no private key anywhere, cause chain included', () => {
    expect(everything).not.toContain(SIG);
    expect(everything).not.toContain(KEY_BODY);
    expect(everything.toLowerCase()).not.toContain('authorization');
  });

  it('keeps what diagnoses the failure: the names, redacted messages and codes down the chain', () => {
    const cause = err.cause as Error & { statusCode?: number; cause?: Error & { statusCode?: number } };
    expect(cause).toBeInstanceOf(Error);
    expect(cause.name).toBe('UnauthorizedError');
    expect(cause.message).toBe('Unauthorized (sig=<redacted>)');
    expect(cause.cause?.statusCode).toBe(401);
  });

  it('keeps a cause that is already a SwitchyardError as it is', () => {
    const inner = new SwitchyardError('TIMEOUT', 'slow');
    expect(new SwitchyardError('CONNECT_FAILED', 'x', { cause: inner }).cause).toBe(inner);
  });

  it('copes with a cycle, a non-error and a string as causes', () => {
    const looped: Error & { cause?: unknown } = new Error('loop');
    looped.cause = looped;
    expect(() => inspect(new SwitchyardError('INTERNAL', 'x', { cause: looped }), { depth: Infinity })).not.toThrow();
    expect((new SwitchyardError('INTERNAL', 'x', { cause: `key SharedAccessKey=${SIG}` }).cause)).toBe('key SharedAccessKey=<redacted>');
    expect(inspect(new SwitchyardError('INTERNAL', 'x', { cause: { request: { headers: { authorization: SIG } } } }), { depth: Infinity })).not.toContain(SIG);
  });
});
