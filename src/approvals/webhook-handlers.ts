import { randomUUID } from 'node:crypto';
import type { DecisionLog } from '../audit/decision-log.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import type { WebhookHandlers } from '../webhooks/webhook-route.js';
import type { ApprovalService } from './approval-service.js';

export interface ApprovalWebhookDeps {
  approvals: ApprovalService | undefined;
  revocations: RevocationList;
  log: DecisionLog;
  organization: string;
  /** Longest a Port token lives (seconds): how long a job revocation must be kept. */
  maxTokenLifetime: number;
  onUnconfigured: (what: string) => void;
}

/**
 * What Port does with Buildkite's events (https://buildkite.com/docs/apis/webhooks/pipelines):
 * a blocked build (`build.finished` with `blocked: true`) goes to the
 * approvals flow; a finished job loses its Port tokens; an activated (unblocked) block
 * job is recorded with who unblocked it.
 */
export function approvalWebhookHandlers(deps: ApprovalWebhookDeps): WebhookHandlers {
  return {
    async buildFinished(p) {
      if (!p.build.blocked) return;
      if (!deps.approvals) return deps.onUnconfigured('a blocked build arrived, but approvals need buildkite.api_token');
      // Buildkite's current word on the build decides, not the payload's: this runs again
      // for a re-sent delivery and for Port's own retries, maybe long after the event.
      const { blockedJobs, state } = await deps.approvals.handleBlockedBuild(p.pipeline.slug, p.build.number);
      if (blockedJobs === 0) return { skipped: `${p.pipeline.slug}#${p.build.number} is no longer blocked (Buildkite says its state is ${state})` };
      return undefined;
    },
    // Runs before the delivery is answered (durable first) and again for a repeated
    // delivery: a job already revoked is left as it is, and logged once.
    async jobFinished(p) {
      if (deps.revocations.isJobRevoked(p.job.id)) return;
      await deps.revocations.revokeJob(p.job.id, 'the job finished (job.finished webhook)', deps.maxTokenLifetime);
      await deps.log.record([
        event('revoke', `Port::Job::${JSON.stringify(p.job.id)}`, 'The job finished: every Port token it was issued is revoked.', {
          job_id: p.job.id,
          build: { pipeline: p.pipeline.slug, number: p.build.number },
        }),
      ]);
    },
    async jobActivated(p) {
      if (p.job.type !== 'manual') return;
      const build = `${deps.organization}/${p.pipeline.slug}/${p.build.number}`;
      await deps.log.record([
        event('unblock_observed', `Port::Build::${JSON.stringify(build)}`, 'Buildkite reports the block step unblocked.', {
          job_id: p.job.id,
          step_key: p.job.step_key ?? null,
          unblocked_by: p.job.unblocked_by ? { id: p.job.unblocked_by.id ?? null, name: p.job.unblocked_by.name ?? null, email: p.job.unblocked_by.email ?? null } : null,
        }),
      ]);
    },
  };
}

function event(action: string, principal: string, reason: string, context: Record<string, unknown>) {
  return { id: randomUUID(), time: new Date().toISOString(), principal, action, resource: null, decision: 'allow' as const, policies: [], reason, context };
}
