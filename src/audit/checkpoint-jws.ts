import { createHash } from 'node:crypto';
import { compactVerify, CompactSign, decodeProtectedHeader, errors as joseErrors, importJWK, type JWK } from 'jose';
import type { ActiveKey } from '../issuer/signing-keys.js';
import { canonicalJson } from '../store/canonical-json.js';
import type { Checkpoint } from '../store/records/decisions.js';

/**
 * Explicit type (RFC 8725 §3.11) so a checkpoint can never pass as a Port access
 * token (`at+jwt`) signed by the same key, nor a token as a checkpoint.
 */
export const CHECKPOINT_TYP = 'port-audit-checkpoint+jwt';

/** Algorithms Port signs with; anything else in a checkpoint header is refused. */
const ALGORITHMS = new Set(['ES256', 'EdDSA', 'Ed25519']);

/** The `prev` of the first chained checkpoint when no checkpoint came before it. */
export const GENESIS_CHECKPOINT = '0'.repeat(64);

/** What the next checkpoint links to: SHA-256 (hex) of this checkpoint's compact JWS, exactly as stored. */
export function checkpointDigest(jws: string): string {
  return createHash('sha256').update(jws, 'utf8').digest('hex');
}

type Signed = Pick<Checkpoint, 'num' | 'seq' | 'hash' | 'time' | 'prev'>;

/**
 * What a checkpoint signs: the chain head at `time`, its own number and the link to the
 * checkpoint before it. A legacy checkpoint (no `prev`) signed only `{seq, hash, time}`;
 * its `num` was given by the store when the chain was introduced and is not signed.
 */
function payloadOf(c: Signed): string {
  if (c.prev === undefined) return canonicalJson({ seq: c.seq, hash: c.hash, time: c.time });
  return canonicalJson({ num: c.num, seq: c.seq, hash: c.hash, time: c.time, prev: c.prev });
}

/**
 * Signs the chain head `{seq, hash}` at `time` as checkpoint `link.num`, linked to the
 * previous checkpoint by `link.prev` (checkpointDigest of its JWS, or GENESIS_CHECKPOINT).
 */
export async function signCheckpoint(
  head: { seq: number; hash: string },
  signer: ActiveKey,
  time: string,
  link: { num: number; prev: string },
): Promise<Checkpoint> {
  const body = { num: link.num, seq: head.seq, hash: head.hash, time, prev: link.prev };
  const jws = await new CompactSign(new TextEncoder().encode(payloadOf(body)))
    .setProtectedHeader({ alg: signer.alg, kid: signer.kid, typ: CHECKPOINT_TYP })
    .sign(signer.key);
  return { ...body, kid: signer.kid, jws };
}

export type CheckpointSignatureProblem = 'unknown_key' | 'bad_signature' | 'checkpoint_mismatch';

export type CheckpointSignatureResult = { ok: true } | { ok: false; problem: CheckpointSignatureProblem; /** Completes "the checkpoint …". */ reason: string };

/**
 * Checks a stored checkpoint on its own: signed by the key it names, typed as a
 * checkpoint, and signing exactly the row's `{num, seq, hash, time, prev}` (legacy:
 * `{seq, hash, time}`). Whether the chain still holds that hash, and whether `prev`
 * links to the checkpoint before, is the caller's business.
 */
export async function checkCheckpointSignature(c: Checkpoint, publicKeys: Map<string, JWK>): Promise<CheckpointSignatureResult> {
  const jwk = publicKeys.get(c.kid);
  if (!jwk) return fail('unknown_key', `was signed with key ${c.kid}, which is not one of Port's signing keys`);

  let header: ReturnType<typeof decodeProtectedHeader>;
  try {
    header = decodeProtectedHeader(c.jws);
  } catch {
    return fail('bad_signature', 'has a signature that is not a compact JWS');
  }
  if (header.kid !== c.kid) return fail('checkpoint_mismatch', `names key ${String(header.kid)} in its signature but key ${c.kid} in its row`);
  if (header.typ !== CHECKPOINT_TYP) return fail('bad_signature', `is not an audit checkpoint JWS (typ ${String(header.typ)})`);

  const alg = jwk.alg ?? (jwk.kty === 'OKP' ? 'EdDSA' : 'ES256');
  if (!ALGORITHMS.has(alg) || header.alg !== alg) return fail('bad_signature', `uses algorithm ${String(header.alg)}, which is not the algorithm of key ${c.kid}`);

  let payload: Uint8Array;
  try {
    const key = await importJWK(jwk, alg);
    ({ payload } = await compactVerify(c.jws, key, { algorithms: [alg] }));
  } catch (err) {
    if (err instanceof joseErrors.JOSEError || err instanceof TypeError) {
      return fail('bad_signature', `has a signature that does not verify under key ${c.kid}`);
    }
    throw err;
  }

  let signed: unknown;
  try {
    signed = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch {
    return fail('checkpoint_mismatch', 'signed something that is not JSON');
  }
  if (canonicalJson(signed) !== payloadOf(c)) {
    return fail('checkpoint_mismatch', 'has a number, seq, hash, time or link that differ from what was signed');
  }
  return { ok: true };
}

function fail(problem: CheckpointSignatureProblem, reason: string): CheckpointSignatureResult {
  return { ok: false, problem, reason };
}
