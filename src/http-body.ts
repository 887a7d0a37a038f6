/**
 * An HTTP answer's body, read whole up to `maxBytes`; undefined (and the stream destroyed,
 * so the connection is not kept reading) once it grows past that. For answers Port only
 * needs small ones of: a larger body is junk or an attack, never buffered.
 */
export async function readCappedBody(body: AsyncIterable<Buffer> & { destroy(): unknown }, maxBytes: number): Promise<Buffer | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > maxBytes) {
      body.destroy();
      return undefined;
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
