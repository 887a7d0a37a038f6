import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AwsSimError } from './aws-sim-error.js';
import { sha256Hex, verifySigV4 } from './sigv4-verify.js';
import { readBody, type StsSimulator } from './sts-simulator.js';

/** What the service saw of one signed request (echoed as JSON and kept for assertions). */
export interface ServiceRequestRecord {
  method: string;
  url: string;
  /** `ok` or the AWS error code answered. */
  outcome: string;
  accessKeyId?: string;
  /** The assumed-role ARN of the session that signed, when the signature checked out. */
  callerArn?: string;
  sessionName?: string;
  tags?: { Key: string; Value: string }[];
  signedHeaders?: string[];
  payloadHash?: string;
  bodySha256: string;
  bodyBytes: number;
  /** Header names as received (values are not kept: they hold credentials). */
  headerNames: string[];
  /** `X-Amz-Target`: the operation a JSON-protocol service (DynamoDB, KMS…) runs on `POST /`. */
  target?: string;
}

/**
 * A tiny AWS service endpoint (`execute-api`, `s3`, …) that accepts only requests SigV4-
 * signed with session credentials the STS simulator issued, and echoes what it saw. For
 * `s3` the signer uses the path as sent and may send `UNSIGNED-PAYLOAD`; other services
 * double-encode the path and must sign the body's hash (SigV4 docs, "Create a canonical request").
 */
export class AwsServiceSimulator {
  readonly requests: ServiceRequestRecord[] = [];

  private constructor(
    private readonly server: Server,
    readonly url: string,
  ) {}

  static async start(sts: StsSimulator, opts: { service: string; maxBody?: number }): Promise<AwsServiceSimulator> {
    let sim: AwsServiceSimulator | undefined;
    const s3 = opts.service === 's3';
    const server = createServer(async (req, res) => {
      const target = req.headers['x-amz-target'];
      const rec: ServiceRequestRecord = {
        method: req.method ?? '',
        url: req.url ?? '',
        outcome: 'ok',
        bodySha256: '',
        bodyBytes: 0,
        headerNames: Object.keys(req.headers),
        ...(typeof target === 'string' ? { target } : {}),
      };
      let status = 200;
      try {
        const body = await readBody(req, opts.maxBody ?? 64 * 1024 * 1024);
        rec.bodySha256 = await sha256Hex(body);
        rec.bodyBytes = body.length;
        let session;
        const v = await verifySigV4({ method: req.method ?? 'GET', url: req.url ?? '/', headers: req.headers, body }, { service: opts.service, uriEscapePath: !s3, allowUnsignedPayload: s3 }, (id) => {
          const found = sts.secretFor(id);
          // Only session credentials (the relay signs with the job's session, never long-term keys).
          if (!found.session) throw new AwsSimError('AccessDenied', 'This service accepts only role session credentials.', 403);
          session = found.session;
          return found;
        });
        const s = session as unknown as { assumedRoleArn: string; sessionName: string; tags: { Key: string; Value: string }[] };
        Object.assign(rec, { accessKeyId: v.accessKeyId, callerArn: s.assumedRoleArn, sessionName: s.sessionName, tags: s.tags, signedHeaders: v.signedHeaders, payloadHash: v.payloadHash });
      } catch (err) {
        const e = err instanceof AwsSimError ? err : new AwsSimError('InternalFailure', 'The simulator failed.', 500);
        rec.outcome = e.code;
        status = e.status;
      }
      sim!.requests.push(rec);
      const json = JSON.stringify(rec.outcome === 'ok' ? rec : { __type: rec.outcome, message: `refused: ${rec.outcome}` });
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
      res.end(json);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    sim = new AwsServiceSimulator(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    return sim;
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}
