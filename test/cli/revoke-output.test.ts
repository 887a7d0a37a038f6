import { describe, expect, it } from 'vitest';
import { describeRevocation } from '../../src/cli/revoke-command.js';
import type { RevocationResult } from '../../src/revocation/revocation-service.js';

const session = (jobId: string) => ({
  credential: 'aws-deploy',
  type: 'aws_role' as const,
  job_id: jobId,
  session_name: `bk-deploy-1-${jobId}`,
  facts: {},
  expires_at: '2026-12-04T20:01:22.000Z',
  after_revocation: "AWS can't recall the session.",
});

const result = (notRecallable: RevocationResult['credentials']['not_recallable']): RevocationResult => ({
  scope: 'job',
  id: 'job-1',
  revoked_at: '2026-12-04T19:46:36.309Z',
  expires_at: '2026-12-04T22:02:36.309Z',
  reason: 'leaked',
  approvals_closed: 0,
  approvals_withdrawn: 0,
  sessions_ended: 0,
  credentials: { recallable: 0, not_recallable: notRecallable },
  note: 'n',
});

describe('port revoke output', () => {
  it('lists an AWS session handed out several times (the cached session) once, with how often', () => {
    const text = describeRevocation(result([session('job-1'), session('job-1'), session('job-1'), session('job-2')]));
    const lines = text.split('\n').filter((l) => l.startsWith('    - aws-deploy'));
    expect(lines).toEqual([
      '    - aws-deploy (session bk-deploy-1-job-1), job job-1, expires 2026-12-04T20:01:22.000Z (released 3 times)',
      '    - aws-deploy (session bk-deploy-1-job-2), job job-2, expires 2026-12-04T20:01:22.000Z',
    ]);
  });
});
