// An https.Agent that names its socket pool once instead of on every request.
//
// Node's https.Agent keys its pool by a name it rebuilds by string concatenation on every request
// (and again when the socket is freed): host and port, then every TLS option, the CA and a device
// certificate with its key included, kilobytes of PEM. Each pool lookup with that fresh string
// makes V8 flatten and hash it again. Measured with callgrind on the raw Azure client over HTTPS
// with a `ca`: 46 k of its 276 k main-thread instructions per message (17 %), in V8's string
// table alone (bench/README.md, "Instructions per message"). The Http transport hands every
// request the same option values, so the name is computed once per distinct set of the values it
// is made of, and the very same string is returned: V8 internalizes it on its first lookup.
import https from 'node:https';

type Options = Record<string | symbol, unknown>;

/**
 * The option keys Node's own getName reads, found by asking it (a proxy that answers every key
 * with a truthy value takes every branch), so a Node release that adds one is followed.
 */
function keysOfName(): readonly (string | symbol)[] {
  const keys = new Set<string | symbol>();
  const probe = new Proxy({} as Options, {
    get(_target, key) {
      keys.add(key);
      return typeof key === 'string' ? 'x' : undefined;
    },
  });
  (https.Agent.prototype as unknown as { getName(this: https.Agent, o: Options): string }).getName.call(new https.Agent(), probe);
  return [...keys];
}

const NAME_KEYS = keysOfName();

export class HttpsAgent extends https.Agent {
  #inputs: unknown[] | undefined;
  #name = '';

  override getName(options: https.RequestOptions = {}): string {
    const o = options as unknown as Options;
    const inputs = this.#inputs;
    if (inputs !== undefined) {
      let same = true;
      for (let i = 0; i < NAME_KEYS.length; i++) {
        if (o[NAME_KEYS[i]!] !== inputs[i]) {
          same = false;
          break;
        }
      }
      if (same) return this.#name;
    }
    const name = super.getName(options);
    this.#inputs = NAME_KEYS.map((key) => o[key]);
    this.#name = name;
    return name;
  }
}
