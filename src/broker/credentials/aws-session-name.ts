/** RoleSessionName rules (STS API reference, AssumeRole): `[\w+=,.@-]`, 2 to 64 characters. */
const MAX = 64;
const DISALLOWED = /[^\w+=,.@-]/g;

/**
 * `bk-<pipeline>-<build>-<job>`: names the job in CloudTrail and in the assumed-role ARN.
 * The job id stays whole (it is what identifies the session); the build number too; only
 * the pipeline slug is shortened to fit 64 characters, and characters AWS refuses become `-`.
 */
export function roleSessionName(job: { pipeline_slug: string; build_number: number; job_id: string }): string {
  const jobId = job.job_id.replace(DISALLOWED, '-');
  const build = String(job.build_number);
  const fixed = `bk--${build}-${jobId}`.length;
  const room = Math.max(0, MAX - fixed);
  const pipeline = job.pipeline_slug.replace(DISALLOWED, '-').slice(0, room);
  const name = `bk-${pipeline}-${build}-${jobId}`;
  // A job id longer than the whole budget would be a malformed token; keep its head rather than fail AWS's check.
  return name.length > MAX ? name.slice(0, MAX) : name;
}
