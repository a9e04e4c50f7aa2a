// The rhea the gateway's connections run on: the copy `azure-iot-amqp-base` itself loads, not
// whichever copy `import 'rhea'` finds from this package.
//
// Why: the SDK classes the gateway drives on its connections (AmqpMessage, the method and twin
// clients, the CBS agent) build their messages with the base's rhea, e.g. the method response's
// `IoThub-status` as `rhea.types.wrap_int(...)`. rhea's encoder recognises a typed value with
// `instanceof Typed` against its own module; a Typed of another copy is not one, so it is encoded
// as a map of that object's fields, and the hub refuses the response ("no numeric
// IoThub-status"). An npm install has several copies of rhea 1.0.24 as soon as anything hoists
// another rhea (the local hub's and @azure/event-hubs' rhea 3.x does): npm then nests one under
// each package that asks for 1.x, ours and the base's apart, and a dependency we declare cannot
// merge them. Loading the base's copy makes "one rhea per connection" true by construction.
import { createRequire } from 'node:module';
import type * as Rhea from 'rhea';

const requireHere = createRequire(import.meta.url);
const requireFromAmqpBase = createRequire(requireHere.resolve('azure-iot-amqp-base'));

export const sdkRhea = requireFromAmqpBase('rhea') as typeof Rhea;
