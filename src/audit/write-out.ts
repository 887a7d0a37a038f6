import type { Writable } from 'node:stream';
import { AuditError } from './errors.js';

/** Writes `chunk`, and when the stream's buffer is full waits for it to drain (back-pressure). */
export async function writeOut(out: Writable, chunk: string): Promise<void> {
  if (out.destroyed || out.writableEnded) throw closed();
  if (out.write(chunk)) return;
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      out.off('drain', onDrain);
      out.off('error', onError);
      out.off('close', onClose);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = (): void => done();
    const onError = (err: Error): void => done(err);
    const onClose = (): void => done(closed());
    out.on('drain', onDrain);
    out.on('error', onError);
    out.on('close', onClose);
  });
}

function closed(): AuditError {
  return new AuditError('audit_output_closed', 'the output stream was closed');
}
