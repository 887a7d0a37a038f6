import type { IncomingMessage } from 'node:http';
import { BodyLimit } from './body-limit.js';
import { RelayError } from './relay-error.js';

/**
 * Largest body the relay buffers to hash for SigV4 (services other than S3 sign the
 * body's SHA-256, so it must be read whole before the request leaves). 8 MiB covers API
 * calls (API Gateway's own payload limit is 10 MB); bigger uploads belong on S3, which
 * is signed with UNSIGNED-PAYLOAD and streamed.
 */
export const AWS_SIGV4_MAX_BUFFERED_BODY = 8 * 1024 * 1024;

/** Reads the request body whole, refusing with 413 beyond `max` bytes (declared or sent). */
export async function bufferBody(req: IncomingMessage, max: number): Promise<Buffer> {
  const tooLarge = () =>
    new RelayError('body_too_large', `The request body is larger than ${max} bytes, the most the relay buffers to sign it with SigV4.`, 413);
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > max) throw tooLarge();
  const limited = new BodyLimit(max);
  const chunks: Buffer[] = [];
  await new Promise<void>((resolve, reject) => {
    req.once('close', () => {
      if (!req.complete) reject(new RelayError('client_closed', 'The client closed the request.', 499));
    });
    limited.on('data', (c: Buffer) => chunks.push(c));
    limited.once('end', resolve);
    limited.once('error', (err) => reject(err instanceof RelayError && err.status === 413 ? tooLarge() : err));
    req.pipe(limited);
  });
  return Buffer.concat(chunks);
}
