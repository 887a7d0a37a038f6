import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { MAX_ATTEST_BODY_BYTES, parseAttestRequest } from '../../agents/attest-request.js';
import { ATTEST_PATH, type AttestationService } from '../../agents/attestation-service.js';
import { AttestationError } from '../../agents/attestation/errors.js';
import { PortError } from '../../errors.js';
import { sendPortError } from '../error-handler.js';

export interface AgentRouteDeps {
  attestations: AttestationService;
}

/**
 * `POST /v1/agents/attest` (JSON): an agent host's attestation, from `port agent attest`.
 * The body is `{buildkite_token, aws_iam?, aws_iid?}` (src/agents/attest-request.ts), the
 * `DPoP` header a proof made with the host key (RFC 9449). Errors are `{error,
 * error_description}` with a specific status; the answer is never cached.
 */
export function agentRoutes(app: FastifyInstance, deps: AgentRouteDeps): void {
  app.post(
    ATTEST_PATH,
    {
      bodyLimit: MAX_ATTEST_BODY_BYTES,
      errorHandler: jsonErrors,
      // Checked before the body is read, so a refused request is never parsed.
      onRequest: async (request: FastifyRequest, reply: FastifyReply) => {
        noStore(reply);
        if (Number(request.headers['content-length']) > MAX_ATTEST_BODY_BYTES) throw tooLarge();
        const type = (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
        if (type !== 'application/json') throw new PortError('invalid_request', 'The request body must be application/json.', 415);
      },
    },
    async (request, reply) => {
      noStore(reply);
      const body = parseAttestRequest(request.body);
      return deps.attestations.attest(body, dpopHeader(request), { requestId: request.id, remoteAddress: request.ip });
    },
  );
}

/** Every `DPoP` field line as received: more than one is refused by the verifier (RFC 9449 §4.3 check 1). */
function dpopHeader(request: FastifyRequest): string | string[] | undefined {
  const raw = request.raw.rawHeaders;
  const values: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) if (raw[i]!.toLowerCase() === 'dpop') values.push(raw[i + 1]!);
  if (values.length === 0) return undefined;
  return values.length === 1 ? values[0] : values;
}

function noStore(reply: FastifyReply): void {
  // The answer names the host key and what the agent proved: never cached by anything in between.
  reply.header('Cache-Control', 'no-store').header('Pragma', 'no-cache');
}

function tooLarge(): AttestationError {
  return new AttestationError('invalid_attestation', `The request body is larger than ${MAX_ATTEST_BODY_BYTES} bytes.`);
}

function jsonErrors(err: FastifyError | Error, request: FastifyRequest, reply: FastifyReply): FastifyReply {
  noStore(reply);
  if (err instanceof PortError) return sendPortError(err, request, reply);
  const fe = err as FastifyError;
  if (fe.code === 'FST_ERR_CTP_BODY_TOO_LARGE') return sendPortError(tooLarge(), request, reply);
  if (fe.code === 'FST_ERR_CTP_EMPTY_JSON_BODY' || fe.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || (fe.statusCode === 400 && err instanceof SyntaxError)) {
    return sendPortError(new AttestationError('invalid_attestation', 'The request body is not valid JSON.'), request, reply);
  }
  throw err;
}
