import { AwsSimError } from './aws-sim-error.js';

/** A session tag as STS receives it. */
export interface SimTag {
  Key: string;
  Value: string;
}

/**
 * STS's parameter rules (STS API reference: AssumeRole, AssumeRoleWithWebIdentity,
 * "Passing session tags in AWS STS"): session name, duration, tags and policy size.
 */
export const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;
const TAG_CHARS = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
export const MAX_TAGS = 50;
export const MAX_POLICY_CHARS = 2048;
/**
 * Model of the packed (compressed, binary) size limit for inline policy plus tags: AWS
 * does not publish its packing, so the simulator counts the compact policy and the
 * tags' characters against 2048 and reports the percentage, as `PackedPolicySize` does.
 */
const PACKED_LIMIT = 2048;

export function checkSessionName(name: string | undefined): string {
  if (name === undefined) throw new AwsSimError('ValidationError', "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null", 400);
  if (!SESSION_NAME.test(name)) {
    throw new AwsSimError(
      'ValidationError',
      `1 validation error detected: Value '${name}' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]* and have length between 2 and 64`,
      400,
    );
  }
  return name;
}

export function checkDuration(raw: string | undefined, max: number): number {
  const duration = raw === undefined ? 3600 : Number(raw);
  if (!Number.isInteger(duration) || duration < 900) {
    throw new AwsSimError('ValidationError', `1 validation error detected: Value '${raw}' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900`, 400);
  }
  if (duration > max) {
    throw new AwsSimError('ValidationError', `The requested DurationSeconds exceeds the MaxSessionDuration set for this role.`, 400);
  }
  return duration;
}

export function checkTags(tags: SimTag[], transitive: string[]): void {
  if (tags.length > MAX_TAGS) throw new AwsSimError('ValidationError', `1 validation error detected: Value at 'tags' failed to satisfy constraint: Member must have length less than or equal to ${MAX_TAGS}`, 400);
  const seen = new Set<string>();
  for (const { Key, Value } of tags) {
    if (Key.length < 1 || Key.length > 128 || !TAG_CHARS.test(Key)) throw new AwsSimError('ValidationError', `Tag key '${Key}' does not satisfy the constraint: length 1–128, characters [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`, 400);
    if (Value.length > 256 || !TAG_CHARS.test(Value)) throw new AwsSimError('ValidationError', `The value of tag '${Key}' does not satisfy the constraint: length 0–256, characters [\\p{L}\\p{Z}\\p{N}_.:/=+\\-@]`, 400);
    if (Key.toLowerCase().startsWith('aws:')) throw new AwsSimError('InvalidParameterValue', `Tag keys can't start with aws: (${Key}).`, 400);
    // Session tag keys are case-insensitive: two that differ in case only are a duplicate.
    if (seen.has(Key.toLowerCase())) throw new AwsSimError('InvalidParameterValue', `Duplicate tag key '${Key}'.`, 400);
    seen.add(Key.toLowerCase());
  }
  for (const key of transitive) {
    if (!seen.has(key.toLowerCase())) throw new AwsSimError('InvalidParameterValue', `The transitive tag key '${key}' is not one of the session tags.`, 400);
  }
}

/** Checks the inline session policy and the packed size; answers PackedPolicySize (percent). */
export function checkPolicyAndPack(policy: string | undefined, tags: SimTag[]): number {
  let compact = '';
  if (policy !== undefined) {
    if (policy.length > MAX_POLICY_CHARS) {
      throw new AwsSimError('ValidationError', `1 validation error detected: Value at 'policy' failed to satisfy constraint: Member must have length less than or equal to ${MAX_POLICY_CHARS}`, 400);
    }
    try {
      compact = JSON.stringify(JSON.parse(policy));
    } catch {
      throw new AwsSimError('MalformedPolicyDocument', 'The policy is not in the valid JSON format.', 400);
    }
  }
  const packed = compact.length + tags.reduce((n, t) => n + t.Key.length + t.Value.length, 0);
  const percent = Math.ceil((packed / PACKED_LIMIT) * 100);
  if (percent > 100) throw new AwsSimError('PackedPolicyTooLarge', `Packed size of consumed sessions policies and session tags exceeds limit (${percent}%).`, 400);
  return percent;
}

/** `Tags.member.N.Key/Value` and `TransitiveTagKeys.member.N` of a Query API request. */
export function listParams(form: URLSearchParams): { tags: SimTag[]; transitive: string[] } {
  const tags: SimTag[] = [];
  const transitive: string[] = [];
  for (let i = 1; form.has(`Tags.member.${i}.Key`); i++) {
    tags.push({ Key: form.get(`Tags.member.${i}.Key`)!, Value: form.get(`Tags.member.${i}.Value`) ?? '' });
  }
  for (let i = 1; form.has(`TransitiveTagKeys.member.${i}`); i++) transitive.push(form.get(`TransitiveTagKeys.member.${i}`)!);
  return { tags, transitive };
}
