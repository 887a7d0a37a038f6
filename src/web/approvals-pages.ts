/**
 * The approver's pages: the pending requests a signed-in person
 * may act on, one request with its build context and a decision form, and the
 * decision itself. Server-rendered, every value escaped, no scripts (CSP), CSRF
 * checked on the form. Refusals come from `ApprovalService.decide` and are shown as
 * a page with their status and code.
 *
 *   GET  /approvals                   pending requests for me (and my own builds waiting)
 *   GET  /approvals/:id               the request, approvals so far, the form when I may act
 *   POST /approvals/:id/decision      verdict=approve|reject, comment, csrf → 303 back
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { openedRevoked, type ApprovalService } from '../approvals/approval-service.js';
import { ApprovalError } from '../approvals/errors.js';
import type { ApprovalRequestRecord, UserRecord } from '../store/records/approvals.js';
import { missing } from '../approvals/requirement.js';
import type { PortConfig } from '../config/config.js';
import { PortError } from '../errors.js';
import type { RevocationList } from '../revocation/revocation-list.js';
import type { Store } from '../store/store.js';
import { html, raw, securityHeaders, sendErrorPage, sendPage, type Html } from './html.js';
import { ssoRoutes, type SignedIn, type WebSessions } from './sso.js';

export interface WebDeps {
  config: PortConfig;
  store: Store;
  /** Without it only the sign-in routes are mounted. */
  approvals?: ApprovalService;
  /** Port's public base URL (cookies, CSRF origin, the SSO redirect URI). */
  publicUrl: string;
  /** Revocations in force: a revoked person can't sign in, and their sessions end. */
  revocations: RevocationList;
  now?: () => number;
}

const ID = /^[A-Za-z0-9-]{1,64}$/;
const MAX_COMMENT = 2000;
const FLASH: Record<string, string> = {
  approved: 'Your approval is recorded.',
  unblocked: 'Your approval completed the request: Port unblocked the step in Buildkite.',
  rejected: 'Your rejection is recorded; the request is closed and the step stays blocked.',
};

/**
 * Mounts the people side: SSO (`/login`, `/auth/callback`, `/logout`) and, with an
 * ApprovalService, the approval pages. Does nothing when the config has no `sso:`
 * (there is no way to sign in then). Returns the sessions helper, if mounted.
 */
export function webRoutes(app: FastifyInstance, deps: WebDeps): WebSessions | undefined {
  if (!deps.config.sso) return undefined;
  const sessions = ssoRoutes(app, {
    config: deps.config,
    store: deps.store,
    publicUrl: deps.publicUrl,
    revocations: deps.revocations,
    ...(deps.now ? { now: deps.now } : {}),
  });
  if (deps.approvals) approvalPages(app, deps.approvals, deps, sessions);
  return sessions;
}

function approvalPages(app: FastifyInstance, approvals: ApprovalService, deps: WebDeps, sessions: WebSessions): void {
  const now = deps.now ?? Date.now;
  const tz = deps.config.approvals.timezone;
  const time = new Intl.DateTimeFormat('en-GB', { day: 'numeric', month: 'short', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23', timeZone: tz, timeZoneName: 'short' });
  const when = (ms: number) => time.format(new Date(ms));

  app.get('/approvals', async (request, reply) => {
    const who = await sessions.require(request, reply);
    if (!who) return reply;
    const t = now();
    const pending = (await deps.store.approvals.list({ status: 'pending' })).filter((r) => r.expiresAt > t).sort((a, b) => a.expiresAt - b.expiresAt);
    const forMe = pending.filter((r) => approvals.eligibility(r, who.user).eligible);
    const mine = pending.filter((r) => !forMe.includes(r) && r.authors.includes(who.user.email));
    const body = html`<h1>Approvals</h1>
      <h2>Waiting for your decision</h2>
      ${forMe.length === 0 ? html`<p class="muted">Nothing is waiting for you.</p>` : forMe.map((r) => summaryCard(r, when, t))}
      ${mine.length > 0 ? html`<h2>Your builds waiting for others</h2>${mine.map((r) => summaryCard(r, when, t))}` : ''}`;
    return sendPage(reply, 200, 'Approvals', body, who.viewer);
  });

  app.get('/approvals/:id', async (request, reply) => {
    const who = await sessions.require(request, reply);
    if (!who) return reply;
    const request_ = await findRequest(request, reply, who);
    if (!request_) return reply;
    const flash = FLASH[String((request.query as Record<string, unknown>).done ?? '')];
    const verdict = approvals.eligibility(request_, who.user);
    return sendPage(reply, 200, `${request_.build.pipeline} #${request_.build.number}`, detail(request_, who, verdict, flash, when, now()), who.viewer);
  });

  app.post('/approvals/:id/decision', { bodyLimit: 64 * 1024 }, async (request, reply) => {
    const who = await sessions.require(request, reply);
    if (!who) return reply;
    const id = (request.params as { id: string }).id;
    const back = { href: `/approvals/${encodeURIComponent(id)}`, text: 'Back to the request' };
    const body = (request.body && typeof request.body === 'object' ? request.body : {}) as Record<string, unknown>;
    if (!sessions.csrfOk(request, who.session, body.csrf)) {
      request.log.warn({ email: who.user.email, origin: request.headers.origin }, 'decision refused: CSRF check failed');
      return sendErrorPage(reply, 403, 'csrf_failed', 'This form did not come from Port (its security token is missing or wrong, or it was sent from another site); reload the request and try again.', { viewer: who.viewer, link: back });
    }
    if (!ID.test(id)) return sendErrorPage(reply, 404, 'not_found', 'No such approval request.', { viewer: who.viewer });
    const verdict = body.verdict;
    if (verdict !== 'approve' && verdict !== 'reject') {
      return sendErrorPage(reply, 400, 'invalid_request', 'Choose Approve or Reject.', { viewer: who.viewer, link: back });
    }
    const comment = typeof body.comment === 'string' ? body.comment.trim() : '';
    if (comment.length > MAX_COMMENT) {
      return sendErrorPage(reply, 400, 'invalid_request', `The comment is longer than ${MAX_COMMENT} characters.`, { viewer: who.viewer, link: back });
    }
    let decided: ApprovalRequestRecord;
    try {
      decided = await approvals.decide(id, who.user, verdict, comment);
    } catch (err) {
      if (err instanceof ApprovalError) {
        return sendErrorPage(reply, err.status, err.code, err.message, { viewer: who.viewer, link: back });
      }
      // Past the checks: the decision may be recorded although the unblock call failed.
      request.log.error({ err: { message: (err as Error).message, code: (err as PortError).code } }, 'approval decision failed');
      const after = await deps.store.approvals.get(id).catch(() => undefined);
      const recorded = after?.approvals.some((a) => a.email === who.user.email);
      const why = err instanceof PortError ? ` (${err.message})` : '';
      return sendErrorPage(
        reply,
        err instanceof PortError && err.status >= 500 ? 502 : 500,
        err instanceof PortError ? err.code : 'server_error',
        recorded ? `Your decision is recorded, but Port could not finish${why}; an operator has to unblock the step.` : `Port could not record your decision${why}; try again.`,
        { viewer: who.viewer, link: back },
      );
    }
    const done = decided.status === 'unblocked' ? 'unblocked' : verdict === 'reject' ? 'rejected' : 'approved';
    return securityHeaders(reply).redirect(`/approvals/${encodeURIComponent(id)}?done=${done}`, 303);
  });

  /**
   * The request, when this person may see it: an eligible approver, someone policy
   * lets approve it (even once closed), its author, or someone who decided on it.
   */
  async function findRequest(request: FastifyRequest, reply: FastifyReply, who: SignedIn): Promise<ApprovalRequestRecord | undefined> {
    const id = (request.params as { id: string }).id;
    const r = ID.test(id) ? await deps.store.approvals.get(id) : undefined;
    if (!r) {
      sendErrorPage(reply, 404, 'not_found', 'No such approval request.', { viewer: who.viewer });
      return undefined;
    }
    if (mayView(r, who.user)) return r;
    const reason = approvals.eligibility(r, who.user).reason;
    sendErrorPage(reply, 403, 'not_eligible', `You are not an approver of this request: ${reason}.`, { viewer: who.viewer });
    return undefined;
  }

  function mayView(r: ApprovalRequestRecord, user: UserRecord): boolean {
    if (r.authors.includes(user.email) || r.approvals.some((a) => a.email === user.email)) return true;
    // Whatever its state: would policy let this person approve it?
    return approvals.wouldBeEligible(r, user);
  }
}

function buildLine(r: ApprovalRequestRecord): Html {
  const b = r.build;
  return html`<code>${b.organization}/${b.pipeline}</code> build <strong>#${b.number}</strong>`;
}

/** Who started the build, as far as Port can tell; a build without a creator says so. */
function creatorText(r: ApprovalRequestRecord): string {
  if (r.requirement.noCreator) return `none named by Buildkite${r.authors.length > 0 ? `; commit author ${r.authors.join(', ')} (self-reported)` : ''}`;
  return r.authors.join(', ') || 'unknown';
}

/** The policies' reason; the no-creator note appended to it is shown on its own. */
function policiesReason(r: ApprovalRequestRecord): string {
  const note = r.requirement.noCreator ? `; ${r.requirement.noCreator.reason}` : '';
  return note && r.requirement.reason.endsWith(note) ? r.requirement.reason.slice(0, -note.length) : r.requirement.reason;
}

function missingText(r: ApprovalRequestRecord): string {
  const m = missing(r.requirement, r.approvals);
  if (m.approvals === 0 && m.groups.length === 0) return 'nothing';
  const parts = [`${m.approvals} more approval${m.approvals === 1 ? '' : 's'}`];
  if (m.groups.length > 0) parts.push(`including one from ${m.groups.join(' and ')}`);
  return parts.join(', ');
}

function relative(ms: number, now: number): string {
  const minutes = Math.round((ms - now) / 60_000);
  if (minutes <= 0) return 'now';
  if (minutes < 90) return `in ${minutes} min`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `in ${hours} h` : `in ${Math.round(hours / 24)} days`;
}

function refOf(r: ApprovalRequestRecord): Html {
  return r.build.tag ? html`tag <code>${r.build.tag}</code> on <code>${r.build.branch}</code>` : html`branch <code>${r.build.branch}</code>`;
}

function summaryCard(r: ApprovalRequestRecord, when: (ms: number) => string, now: number): Html {
  return html`<div class="card request">
    <h3><a href="/approvals/${encodeURIComponent(r.id)}">${r.step.label || r.step.step}</a> — ${buildLine(r)}</h3>
    <dl>
      <dt>Ref</dt><dd>${refOf(r)} at <code title="${r.build.commit}">${r.build.commit.slice(0, 12)}</code></dd>
      <dt>Creator / author</dt><dd>${creatorText(r)}</dd>
      <dt>Why Port asks</dt><dd>${r.requirement.reason}</dd>
      <dt>Still needed</dt><dd>${missingText(r)}</dd>
      <dt>Expires</dt><dd>${when(r.expiresAt)} (${relative(r.expiresAt, now)})</dd>
    </dl>
  </div>`;
}

function detail(r: ApprovalRequestRecord, who: SignedIn, verdict: { eligible: boolean; reason: string }, flash: string | undefined, when: (ms: number) => string, now: number): Html {
  const b = r.build;
  const open = r.status === 'pending' && r.expiresAt > now;
  const status = open ? 'pending' : r.status === 'pending' ? 'expired' : r.status;
  const policies = r.requirement.policies.map((p) => html`<li><code>${p.id}</code>${p.reason ? html` — ${p.reason}` : ''}</li>`);
  const entries = r.approvals.map(
    (a) => html`<tr><td>${a.email}</td><td>${a.groups.join(', ')}</td><td>${a.decision === 'approve' ? 'approved' : 'rejected'}</td><td>${a.comment}</td><td>${when(a.at)}</td></tr>`,
  );
  const form = verdict.eligible
    ? html`<form method="post" action="/approvals/${encodeURIComponent(r.id)}/decision" class="card">
        <input type="hidden" name="csrf" value="${who.session.csrfToken}">
        <label for="comment"><strong>Comment</strong> <span class="muted">(recorded with your decision)</span></label>
        <textarea id="comment" name="comment" maxlength="${MAX_COMMENT}"></textarea>
        <div class="actions"><button type="submit" name="verdict" value="approve" class="approve">Approve</button>
        <button type="submit" name="verdict" value="reject" class="reject">Reject</button></div>
      </form>`
    : open
      ? html`<div class="notice">You cannot decide on this request: ${verdict.reason}.</div>`
      : raw('');
  return html`${flash ? html`<div class="flash">${flash}</div>` : ''}
    <h1>${r.step.label || r.step.step} <span class="status ${status}">${status}</span></h1>
    <div class="card">
      <h3>${buildLine(r)}</h3>
      <dl>
        <dt>Pipeline</dt><dd><code>${b.organization}/${b.pipeline}</code></dd>
        <dt>Build</dt><dd>#${b.number} (source: ${b.source})</dd>
        <dt>Branch</dt><dd><code>${b.branch}</code></dd>
        ${b.tag ? html`<dt>Tag</dt><dd><code>${b.tag}</code></dd>` : ''}
        <dt>Commit</dt><dd><code>${b.commit}</code></dd>
        <dt>Creator / author</dt><dd>${creatorText(r)}</dd>
        <dt>Step</dt><dd>${r.step.label || '(no label)'}${r.step.key ? html` <code>${r.step.key}</code>` : ''}</dd>
        <dt>Requested</dt><dd>${when(r.createdAt)}</dd>
        <dt>${open ? 'Expires' : 'Expiry'}</dt><dd>${when(r.expiresAt)}${open ? ` (${relative(r.expiresAt, now)})` : ''}</dd>
      </dl>
    </div>
    ${openedRevoked(r)
      ? html`<h2>Why Port refused</h2><div class="card notice revoked"><p>${r.requirement.reason}</p><p>Port opened no approval for this step and will not unblock it.</p></div>`
      : html`<h2>Why Port asks</h2>
    <div class="card"><p>${policiesReason(r)}</p><ul>${policies}</ul>
      ${r.requirement.noCreator ? html`<p class="notice no-creator"><strong>No creator:</strong> ${r.requirement.noCreator.reason}.</p>` : ''}
      <p>Needs ${r.requirement.approvals} approval${r.requirement.approvals === 1 ? '' : 's'}${r.requirement.groups.length > 0 ? ` with one from each of: ${r.requirement.groups.join(', ')}` : ''}.
      ${open ? html`Still needed: <strong>${missingText(r)}</strong>.` : ''}</p>
    </div>`}
    <h2>Decisions so far</h2>
    ${entries.length > 0 ? html`<table><thead><tr><th>Who</th><th>Groups</th><th>Decision</th><th>Comment</th><th>When</th></tr></thead><tbody>${entries}</tbody></table>` : html`<p class="muted">None yet.</p>`}
    ${open ? html`<h2>Your decision</h2>${form}` : ''}`;
}
