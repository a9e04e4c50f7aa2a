// Connection strings, SAS tokens and PEM keys travel through error messages from the Azure SDK
// and from user input; anything that may reach a log passes through here first.
const patterns: Array<[RegExp, string]> = [
  [/(SharedAccessKey=)[^;"'\s]+/gi, '$1<redacted>'],
  [/(SharedAccessSignature=)[^;"'\s]+/gi, '$1<redacted>'],
  [/(\bsig=)[^&;"'\s)]+/gi, '$1<redacted>'],
  [/(-----BEGIN [A-Z ]*PRIVATE KEY-----)[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----)/g, '$1<redacted>$2'],
];

export function redactSecrets(text: string): string {
  let out = text;
  for (const [re, replacement] of patterns) out = out.replace(re, replacement);
  return out;
}
