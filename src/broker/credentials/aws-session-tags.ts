import { CredentialError } from './errors.js';

export interface SessionTag {
  Key: string;
  Value: string;
}

/** Tag value rules ("Passing session tags in AWS STS"): up to 256 characters of this set. */
const TAG_VALUE = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]{0,256}$/u;
/** At most 50 session tags per session (same page). */
const MAX_TAGS = 50;

/**
 * Session tags from the job's claims (`session_tags: {TagKey: claim_name}`). A missing
 * claim, or a value AWS would refuse, is an error naming tag and claim — never dropped or
 * rewritten: an ABAC condition comparing a tag must not match a value the job doesn't hold.
 * Numbers become strings; `null` (e.g. `build_tag` of an untagged build) counts as missing.
 */
export function sessionTagsFromClaims(mapping: Record<string, string>, claims: Record<string, unknown>, credential: string): SessionTag[] {
  const entries = Object.entries(mapping);
  if (entries.length > MAX_TAGS) {
    throw new CredentialError('invalid_request', `Credential ${credential} maps ${entries.length} session tags; AWS allows at most ${MAX_TAGS}.`);
  }
  return entries.map(([Key, claim]) => {
    const raw = claims[claim];
    if (raw === undefined || raw === null || raw === '') {
      throw new CredentialError('invalid_request', `Session tag ${Key} needs the job claim ${claim}, which this job's token does not carry.`);
    }
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      throw new CredentialError('invalid_request', `Session tag ${Key}: the job claim ${claim} is not a single value.`);
    }
    const Value = String(raw);
    if (!TAG_VALUE.test(Value)) {
      throw new CredentialError(
        'invalid_request',
        `Session tag ${Key}: the value of job claim ${claim} has characters AWS does not allow in a tag value (letters, digits, spaces and _.:/=+-@, up to 256).`,
      );
    }
    return { Key, Value };
  });
}
