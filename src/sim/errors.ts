/**
 * Errors the simulated Buildkite Agent API answers with. Each carries the HTTP
 * status Buildkite would answer and a message for the `{"message": …}` body
 * (the shape the agent's `api.ErrorResponse` decodes, `buildkite/agent:api/client.go`).
 */
import { PortError } from '../errors.js';

export type SimApiErrorCode =
  | 'bad_request'
  | 'unauthorized'
  | 'forbidden'
  | 'not_found'
  | 'unprocessable'
  | 'unavailable';

export class SimApiError extends PortError {
  declare readonly code: SimApiErrorCode;
  constructor(code: SimApiErrorCode, message: string, status: number) {
    super(code, message, status);
  }
}

export const unprocessable = (message: string): SimApiError => new SimApiError('unprocessable', message, 422);
