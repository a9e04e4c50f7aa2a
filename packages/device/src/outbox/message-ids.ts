// The ids the outbox gives messages that have none: a random prefix drawn once per outbox and a
// counter, instead of a UUID per message. An id is drawn once, stored with the message (in the
// log too, with `dir`) and sent unchanged on every attempt and after a restart, so all it has to
// be is unique: 72 random bits per outbox keep two outboxes (two runs of one device, two devices)
// apart, and the counter keeps one outbox's messages apart. It is 13-17 characters instead of 36:
// over MQTT the id is part of every message's topic, which the SDK builds and escapes and the hub
// parses, per message (bench/README.md, "Outbox").
import { randomBytes } from 'node:crypto';

/** Returns a generator of ids unique to it: `<12 random base64url characters><counter in base 36>`. */
export function messageIdSource(): () => string {
  const prefix = randomBytes(9).toString('base64url');
  let counter = 0;
  return () => prefix + (++counter).toString(36);
}
