// File upload notifications: when a device reports a successful upload (HTTPS POST
// /devices/{id}/files/notifications), IoT Hub puts one message on
// /messages/serviceBound/filenotifications naming the blob. Failed uploads are not notified.
import { randomUUID } from 'node:crypto';
import rhea from 'rhea';
import type { OutgoingAmqpMessage } from './mapping.ts';

export const FILE_NOTIFICATION_ADDRESS = '/messages/serviceBound/filenotifications';
export const FILE_NOTIFICATION_CONTENT_TYPE = 'application/vnd.microsoft.iothub.filenotification.json';

/** What the HTTPS device API knows about a completed upload. */
export interface CompletedUpload {
  deviceId: string;
  /** `<deviceId>/<name>`, the blob's path in its container. */
  blobName: string;
  /** Where the blob can be read, as IoT Hub gives the storage URL. */
  blobUri: string;
  blobSizeInBytes: number;
  /** ISO time the blob was last written. */
  lastUpdatedTime: string;
}

export interface FileNotificationBody extends CompletedUpload {
  /** ISO time the notification was created. */
  enqueuedTimeUtc: string;
}

export function fileNotificationMessage(upload: CompletedUpload, now: number): OutgoingAmqpMessage {
  const body: FileNotificationBody = {
    deviceId: upload.deviceId,
    blobUri: upload.blobUri,
    blobName: upload.blobName,
    lastUpdatedTime: upload.lastUpdatedTime,
    blobSizeInBytes: upload.blobSizeInBytes,
    enqueuedTimeUtc: new Date(now).toISOString(),
  };
  return {
    message_id: randomUUID(),
    to: FILE_NOTIFICATION_ADDRESS,
    content_type: FILE_NOTIFICATION_CONTENT_TYPE,
    content_encoding: 'utf-8',
    message_annotations: { 'iothub-enqueuedtime': new Date(now) },
    body: rhea.message.data_section(Buffer.from(JSON.stringify(body))),
  };
}
