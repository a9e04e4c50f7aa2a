import type { ServerResponse } from 'node:http';
import { HubError } from '../core/errors.ts';

/** IoT Hub's REST error body: `parseErrorBody` in azure-iot-http-base splits `Message` on `:` and `;`. */
export interface ErrorBody {
  Message: string;
  ExceptionMessage: string;
  errorCode: number;
}

/**
 * A failure the HTTP layer itself detects (route, query, body) whose status has no HubError kind,
 * such as 404 for an unknown route or 405. Shaped like HubError so one writer handles both.
 */
export class HttpError extends Error {
  readonly httpStatus: number;
  readonly errorCode: number;
  readonly code: string;
  readonly headers: Record<string, string>;
  constructor(httpStatus: number, code: string, errorCode: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.name = 'HttpError';
    this.httpStatus = httpStatus;
    this.code = code;
    this.errorCode = errorCode;
    this.headers = headers;
  }
  toBody(): ErrorBody {
    return { Message: `ErrorCode:${this.code};${this.message}`, ExceptionMessage: this.message, errorCode: this.errorCode };
  }
}

export function badRequest(message: string): HubError {
  return new HubError('ArgumentInvalid', message);
}

export function unauthorized(message: string): HubError {
  return new HubError('Unauthorized', message);
}

export function sendJson(res: ServerResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  res.writeHead(status, { 'Content-Type': 'application/json; charset=utf-8', 'Content-Length': String(body.length), ...headers });
  res.end(body);
}

export function sendEmpty(res: ServerResponse, status: number, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Length': '0', ...headers });
  res.end();
}

/** Turns anything thrown by a handler or the core into a response; unknown errors become 500. */
export function errorResponse(err: unknown): { status: number; body: ErrorBody; headers: Record<string, string> } {
  if (err instanceof HubError) return { status: err.httpStatus, body: err.toBody(), headers: {} };
  if (err instanceof HttpError) return { status: err.httpStatus, body: err.toBody(), headers: err.headers };
  return {
    status: 500,
    body: { Message: 'ErrorCode:ServerError;The local hub failed to handle the request', ExceptionMessage: 'internal error', errorCode: 500001 },
    headers: {},
  };
}
