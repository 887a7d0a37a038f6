/**
 * The bodies Port sends when an approval request opens and closes: a Slack
 * incoming-webhook message and a generic JSON webhook
 * body. Pure functions of the request record and its link.
 *
 * What goes out is the build's context, the policy's reason, what is needed, who
 * decided and the outcome — never a comment (an approver may write anything into
 * it), a field value, a token or a secret.
 */
import type { ApprovalEntry, ApprovalRequestRecord, ApprovalStatus } from '../store/records/approvals.js';
import { missing } from './requirement.js';

export type NotificationEvent = 'approval.opened' | 'approval.closed';

/** The generic JSON webhook body. Times are RFC 3339 (UTC). */
export interface WebhookNotification {
  event: NotificationEvent;
  request: {
    id: string;
    status: ApprovalStatus;
    organization: string;
    pipeline: string;
    build_number: number;
    branch: string;
    tag: string | null;
    step_key: string | null;
    step_label: string;
    requirement: {
      approvals: number;
      groups: string[];
      reason: string;
      policies: string[];
      /** What is still needed now (nothing once satisfied). */
      missing: { approvals: number; groups: string[] };
    };
    /** Decisions so far: who and which way, never their comments. */
    approvals: { email: string; decision: 'approve' | 'reject'; at: string }[];
    created_at: string;
    expires_at: string;
    closed_at: string | null;
  };
  link: string;
}

export function webhookNotification(event: NotificationEvent, request: ApprovalRequestRecord, link: string): WebhookNotification {
  const still = missing(request.requirement, request.approvals);
  return {
    event,
    request: {
      id: request.id,
      status: request.status,
      organization: request.build.organization,
      pipeline: request.build.pipeline,
      build_number: request.build.number,
      branch: request.build.branch,
      tag: request.build.tag,
      step_key: request.step.key,
      step_label: request.step.label,
      requirement: {
        approvals: request.requirement.approvals,
        groups: [...request.requirement.groups],
        reason: request.requirement.reason,
        policies: request.requirement.policies.map((p) => p.id),
        missing: { approvals: still.approvals, groups: still.groups },
      },
      approvals: request.approvals.map((a) => ({ email: a.email, decision: a.decision, at: iso(a.at) })),
      created_at: iso(request.createdAt),
      expires_at: iso(request.expiresAt),
      closed_at: request.closedAt === undefined ? null : iso(request.closedAt),
    },
    link,
  };
}

/** Slack Block Kit message for an incoming webhook: `text` is the fallback (and what Slack-compatible chats show). */
export interface SlackMessage {
  text: string;
  blocks: SlackBlock[];
}

export type SlackBlock =
  | { type: 'section'; text: SlackText; fields?: SlackText[] }
  | { type: 'actions'; elements: { type: 'button'; text: { type: 'plain_text'; text: string }; url: string; style?: 'primary' }[] }
  | { type: 'context'; elements: SlackText[] };

export interface SlackText {
  type: 'mrkdwn';
  text: string;
}

export function slackOpenedMessage(request: ApprovalRequestRecord, link: string): SlackMessage {
  const build = buildName(request);
  const need = needs(request);
  return {
    text: `Approval needed: ${slackText(`${build}${ref(request)} — ${stepTitle(request)}`)} — ${slackText(need)}. <${link}|Open the request>`,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*<${link}|Approval needed>* for ${slackText(build)}\n*Why:* ${slackText(request.requirement.reason, 500)}` },
        fields: [...contextFields(request), field('Needs', need), field('Expires', when(request.expiresAt))],
      },
      button('Open the request', link, true),
    ],
  };
}

export function slackClosedMessage(request: ApprovalRequestRecord, link: string): SlackMessage {
  const build = buildName(request);
  const result = outcome(request);
  return {
    text: `${result.title}: ${slackText(`${build}${ref(request)} — ${stepTitle(request)}`)}. ${slackText(result.detail, 500)} <${link}|View the request>`,
    blocks: [
      {
        type: 'section',
        text: { type: 'mrkdwn', text: `*<${link}|${result.title}>* — ${slackText(build)}\n${slackText(result.detail, 500)}` },
        fields: contextFields(request),
      },
      button('View the request', link, false),
    ],
  };
}

/** The outcome of a closed request in words (plain text); names who decided, never what they wrote. */
export function outcome(request: ApprovalRequestRecord): { title: string; detail: string } {
  const approvers = emails(request.approvals.filter((a) => a.decision === 'approve'));
  switch (request.status) {
    case 'unblocked':
      return { title: 'Unblocked', detail: `Approved by ${approvers || 'policy'}; Port unblocked the step.` };
    case 'rejected': {
      const rejecter = emails(request.approvals.filter((a) => a.decision === 'reject'));
      return { title: 'Rejected', detail: `Rejected by ${rejecter || 'an approver'}; Port will not unblock the step.` };
    }
    case 'expired': {
      const still = missing(request.requirement, request.approvals);
      const given = approvers ? `approved so far by ${approvers}` : 'no approvals';
      return { title: 'Expired', detail: `The request expired unanswered (${given}; still needed: ${describeNeed(still.approvals, still.groups)}).` };
    }
    case 'unblock_failed':
      return { title: 'Unblock failed', detail: `Approved by ${approvers || 'nobody'}, but Port could not unblock the step; the decision log says why.` };
    case 'pending':
      return { title: 'Pending', detail: `Still needed: ${needs(request)}.` };
    case 'revoked':
      return { title: 'Revoked', detail: 'The build, job or person it was for was revoked; Port will not unblock the step.' };
  }
}

function contextFields(request: ApprovalRequestRecord): SlackText[] {
  return [
    field('Pipeline', `${request.build.organization}/${request.build.pipeline}`),
    field('Build', `#${request.build.number}`),
    request.build.tag ? field('Tag', request.build.tag) : field('Branch', request.build.branch || '—'),
    field('Step', request.step.label ? `${request.step.label}${request.step.key ? ` (${request.step.key})` : ''}` : stepName(request)),
  ];
}

// The helpers below return plain text; `slackText` escapes it where it is placed.

function needs(request: ApprovalRequestRecord): string {
  const still = missing(request.requirement, request.approvals);
  return describeNeed(still.approvals, still.groups);
}

function describeNeed(approvals: number, groups: readonly string[]): string {
  if (approvals === 0 && groups.length === 0) return 'nothing more';
  const count = `${approvals} approval${approvals === 1 ? '' : 's'}`;
  if (groups.length === 0) return count;
  return `${count}, including one from each of: ${groups.join(', ')}`;
}

function buildName(request: ApprovalRequestRecord): string {
  return `${request.build.organization}/${request.build.pipeline} #${request.build.number}`;
}

function ref(request: ApprovalRequestRecord): string {
  return request.build.tag ? ` (tag ${request.build.tag})` : request.build.branch ? ` (${request.build.branch})` : '';
}

function stepTitle(request: ApprovalRequestRecord): string {
  return request.step.label || stepName(request);
}

function stepName(request: ApprovalRequestRecord): string {
  return request.step.key ?? request.step.step;
}

function emails(entries: readonly ApprovalEntry[]): string {
  return entries.map((e) => e.email).join(', ');
}

function field(title: string, text: string): SlackText {
  // Field text is limited to 2,000 characters by Slack.
  return { type: 'mrkdwn', text: `*${title}*\n${slackText(text, 300)}` };
}

function button(text: string, url: string, primary: boolean): SlackBlock {
  return { type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text }, url, ...(primary ? { style: 'primary' as const } : {}) }] };
}

function when(ms: number): string {
  return `${new Date(ms).toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Text from the build (branch, tag, step label — anyone who can push chooses them)
 * made inert for Slack mrkdwn: `&`, `<` and `>` escaped so it can't form a link or a
 * `<!channel>` mention, control characters flattened, and the length bounded.
 * Each piece of text passes through it exactly once, where it is placed.
 */
export function slackText(text: string, max = 200): string {
  const flat = text.replace(/[\u0000-\u001f\u007f]+/g, ' ');
  const cut = flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
  return cut.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
