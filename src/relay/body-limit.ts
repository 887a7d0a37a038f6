import { Transform, type TransformCallback } from 'node:stream';
import { RelayError } from './relay-error.js';

/** Passes a request body through, failing with 413 once it exceeds `max` bytes. */
export class BodyLimit extends Transform {
  private seen = 0;

  constructor(private readonly max: number) {
    super();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.seen += chunk.length;
    if (this.seen > this.max) {
      done(new RelayError('body_too_large', `The request body is larger than this route's limit of ${this.max} bytes.`, 413));
      return;
    }
    done(null, chunk);
  }
}
