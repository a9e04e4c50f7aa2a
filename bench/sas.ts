import { createHmac } from 'node:crypto';

/** A device SAS token as the Azure SDK builds it: HMAC-SHA256 over "<url-encoded sr>\n<expiry>". */
export function deviceSasToken(hostName: string, deviceId: string, base64Key: string, ttlSeconds = 3600): string {
  const sr = encodeURIComponent(`${hostName}/devices/${deviceId}`);
  const se = Math.floor(Date.now() / 1000) + ttlSeconds;
  const sig = createHmac('sha256', Buffer.from(base64Key, 'base64')).update(`${sr}\n${se}`).digest('base64');
  return `SharedAccessSignature sr=${sr}&sig=${encodeURIComponent(sig)}&se=${se}`;
}
