import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ApprovalService } from '../../src/approvals/approval-service.js';
import type { BuildkiteBuildSummary } from '../../src/approvals/buildkite-builds.js';
import { slackClosedMessage, slackOpenedMessage, slackText, webhookNotification } from '../../src/approvals/notification-messages.js';
import { ApprovalNotifier, NotificationError, type ApprovalNotifications } from '../../src/approvals/notifier.js';
import type { ApprovalRequestRecord } from '../../src/store/records/approvals.js';
import { DecisionLog } from '../../src/audit/decision-log.js';
import { configFromObject, type PortConfig } from '../../src/config/config.js';
import { ConfigError } from '../../src/errors.js';
import { PolicyEngine } from '../../src/policy/engine.js';
import { RevocationList } from '../../src/revocation/revocation-list.js';
import { SqliteStore } from '../../src/store/sqlite/sqlite-store.js';
import { APPROVAL_POLICIES } from '../helpers/approval-policies.js';
import { FakeBuildkite } from '../helpers/fake-buildkite.js';

// The same small fake as approval-service.test.ts.
/** A local server standing in for Slack and a generic webhook receiver. */
interface Received {
  path: string;
  headers: IncomingMessage['headers'];
  body: any;
}
class Sinks {
  received: Received[] = [];
  /** Status codes to answer per path prefix, consumed in order; 200 when empty. */
  answers = new Map<string, (number | 'hang')[]>();
  private server!: Server;
  private hanging: ServerResponse[] = [];
  base = '';

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        this.received.push({ path: req.url ?? '', headers: req.headers, body: text ? JSON.parse(text) : undefined });
        const prefix = [...this.answers.keys()].find((p) => (req.url ?? '').startsWith(p));
        const next = prefix ? this.answers.get(prefix)!.shift() : undefined;
        if (next === 'hang') return void this.hanging.push(res);
        const status = next ?? 200;
        if (status >= 300 && status < 400) res.setHeader('location', '/redirected/elsewhere');
        res.statusCode = status;
        res.end(status === 200 ? 'ok' : 'no');
      });
    });
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.base = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  at(prefix: string): Received[] {
    return this.received.filter((r) => r.path.startsWith(prefix));
  }

  async stop(): Promise<void> {
    for (const res of this.hanging) res.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

const SLACK_SECRET = 'T0SECRET/B0SECRET/slack-s3cr3t-path';
const HOOK_SECRET = 'hook-s3cr3t-token';

let dir: string;
let store: SqliteStore;
let bk: FakeBuildkite;
let clock: { t: number };
let sinks: Sinks;
let config: PortConfig;
let log: DecisionLog;
let errors: NotificationError[];
let notifier: ApprovalNotifier;
let service: ApprovalService;
let revocations: RevocationList;

const users = {
  dev: { email: 'dev@acme.test', active: true, groups: ['platform', 'developers'], updatedAt: 0 },
  pat: { email: 'pat@acme.test', active: true, groups: ['platform'], updatedAt: 0 },
  sam: { email: 'sam@acme.test', active: true, groups: ['security'], updatedAt: 0 },
};

function blockedBuild(number: number, init: Partial<BuildkiteBuildSummary> = {}): BuildkiteBuildSummary {
  const b: BuildkiteBuildSummary = {
    id: `build-${number}`,
    number,
    branch: 'feature/login',
    tag: null,
    commit: 'a'.repeat(40),
    source: 'webhook',
    blocked: true,
    creator: { id: 'u1', name: 'Dev', email: 'dev@acme.test' },
    jobs: [
      { id: `cmd-${number}`, type: 'script', state: 'passed' },
      { id: `block-${number}`, type: 'manual', state: 'blocked', label: 'Deploy?', step_key: 'deploy', unblockable: true },
    ],
    ...init,
  };
  bk.builds.set(`deploy/${number}`, b);
  return b;
}

function makeConfig(slackUrl: string, hookUrl: string): PortConfig {
  writeFileSync(join(dir, 'slack.url'), `${slackUrl}\n`);
  writeFileSync(join(dir, 'hook.url'), hookUrl);
  return configFromObject(
    {
      server: { public_url: 'https://port.test' },
      buildkite: { organization: 'acme' },
      policies: './policies',
      approvals: { expire_after: '1h', notify: { slack_webhook: 'file:slack.url', webhook: 'file:hook.url' } },
    },
    join(dir, 'port.yaml'),
  );
}

function makeService(n: ApprovalNotifications | undefined, extra: { onNotifyError?: (err: unknown) => void } = {}): ApprovalService {
  return new ApprovalService({ config, policy, store, log, api: bk, revocations, now: () => clock.t, ...(n ? { notifier: n } : {}), ...extra });
}

let policy: PolicyEngine;

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'port-notify-'));
  mkdirSync(join(dir, 'policies'));
  writeFileSync(join(dir, 'policies', 'approvals.cedar'), APPROVAL_POLICIES);
  store = SqliteStore.open(join(dir, 'port.db'));
  revocations = await RevocationList.open(store);
  for (const u of Object.values(users)) await store.users.upsert(u);
  bk = new FakeBuildkite();
  clock = { t: Date.UTC(2026, 10, 25, 12) };
  sinks = new Sinks();
  await sinks.start();
  config = makeConfig(`${sinks.base}/slack/${SLACK_SECRET}`, `${sinks.base}/hook/${HOOK_SECRET}`);
  log = new DecisionLog(store);
  errors = [];
  notifier = ApprovalNotifier.fromConfig(config, { onError: (e) => errors.push(e), log, retryDelayMs: 10, timeoutMs: 1_000 })!;
  policy = await PolicyEngine.open(join(dir, 'policies'));
  service = makeService(notifier);
});
afterEach(async () => {
  await notifier.idle();
  await sinks.stop();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
});

async function open(number: number, init: Partial<BuildkiteBuildSummary> = {}): Promise<ApprovalRequestRecord> {
  blockedBuild(number, init);
  await service.handleBlockedBuild('deploy', number);
  await notifier.idle();
  return (await store.approvals.getByJob(`block-${number}`))!;
}

function events(prefix: string): string[] {
  return sinks.at(prefix).map((r) => (prefix === '/hook' ? `${r.body.event}:${r.body.request.status}` : (r.body.text as string).split(':')[0]!));
}

/** Everything Port said about its failures: messages, serialised errors, the decision log. */
async function everythingSaid(): Promise<string> {
  const logged = (await store.decisions.read(0, 1000)).map((e) => JSON.stringify(e.record));
  return [...errors.map((e) => `${e.message} ${String(e)} ${JSON.stringify(e)} ${e.stack ?? ''}`), ...logged].join('\n');
}

describe('approval notifications through ApprovalService', () => {
  it('opening sends one Slack message and one webhook body, with the link and the context', async () => {
    const request = await open(12);
    const link = `https://port.test/approvals/${request.id}`;
    expect(sinks.at('/slack')).toHaveLength(1);
    expect(sinks.at('/hook')).toHaveLength(1);

    const hook = sinks.at('/hook')[0]!;
    expect(hook.headers['content-type']).toBe('application/json');
    expect(hook.body).toEqual({
      event: 'approval.opened',
      request: {
        id: request.id,
        status: 'pending',
        organization: 'acme',
        pipeline: 'deploy',
        build_number: 12,
        branch: 'feature/login',
        tag: null,
        step_key: 'deploy',
        step_label: 'Deploy?',
        requirement: {
          approvals: 2,
          groups: ['platform', 'security'],
          reason: expect.stringContaining('platform and security sign-off'),
          policies: ['feature-deploys-need-review'],
          missing: { approvals: 2, groups: ['platform', 'security'] },
        },
        approvals: [],
        created_at: new Date(clock.t).toISOString(),
        expires_at: new Date(clock.t + 3600_000).toISOString(),
        closed_at: null,
      },
      link,
    });

    const slack = sinks.at('/slack')[0]!;
    expect(slack.headers['content-type']).toBe('application/json');
    expect(slack.body.text).toContain('Approval needed: acme/deploy #12 (feature/login) — Deploy?');
    expect(slack.body.text).toContain(`<${link}|Open the request>`);
    const [section, actions] = slack.body.blocks;
    expect(section.type).toBe('section');
    expect(section.text.text).toContain('platform and security sign-off');
    const fields = section.fields.map((f: { text: string }) => f.text);
    expect(fields).toEqual([
      '*Pipeline*\nacme/deploy',
      '*Build*\n#12',
      '*Branch*\nfeature/login',
      '*Step*\nDeploy? (deploy)',
      '*Needs*\n2 approvals, including one from each of: platform, security',
      '*Expires*\n2026-11-25 13:00 UTC',
    ]);
    expect(actions).toEqual({ type: 'actions', elements: [{ type: 'button', text: { type: 'plain_text', text: 'Open the request' }, url: link, style: 'primary' }] });
    expect(errors).toEqual([]);
  });

  it('a repeated webhook and an intermediate approval send nothing more; the unblock closes with the approvers', async () => {
    const request = await open(13);
    await service.handleBlockedBuild('deploy', 13);
    await service.decide(request.id, users.pat, 'approve', 'ok from platform');
    await notifier.idle();
    expect(sinks.received).toHaveLength(2);

    await service.decide(request.id, users.sam, 'approve', 'ok from security');
    await notifier.idle();
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.closed:unblocked']);
    expect(events('/slack')).toEqual(['Approval needed', 'Unblocked']);
    const closed = sinks.at('/hook')[1]!.body;
    expect(closed.request.approvals).toEqual([
      { email: 'pat@acme.test', decision: 'approve', at: new Date(clock.t).toISOString() },
      { email: 'sam@acme.test', decision: 'approve', at: new Date(clock.t).toISOString() },
    ]);
    expect(closed.request.closed_at).toBe(new Date(clock.t).toISOString());
    expect(closed.request.requirement.missing).toEqual({ approvals: 0, groups: [] });
    const slack = sinks.at('/slack')[1]!.body;
    expect(slack.blocks[0].text.text).toContain('Approved by pat@acme.test, sam@acme.test; Port unblocked the step.');
    // Comments never leave Port.
    expect(JSON.stringify(sinks.received)).not.toMatch(/ok from/);
  });

  it('a rejection closes with the rejecter and the outcome, never the comment', async () => {
    const request = await open(14);
    await service.decide(request.id, users.sam, 'reject', 'SECRET=hunter2 <!channel> not today');
    await notifier.idle();
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.closed:rejected']);
    expect(events('/slack')).toEqual(['Approval needed', 'Rejected']);
    expect(sinks.at('/hook')[1]!.body.request.approvals).toEqual([{ email: 'sam@acme.test', decision: 'reject', at: new Date(clock.t).toISOString() }]);
    expect(sinks.at('/slack')[1]!.body.text).toContain('Rejected by sam@acme.test; Port will not unblock the step.');
    expect(JSON.stringify(sinks.received)).not.toMatch(/hunter2|not today|channel/);
  });

  it('an expiry closes with what was still missing', async () => {
    const request = await open(15);
    await service.decide(request.id, users.pat, 'approve', '');
    clock.t += 3600_000;
    expect(await service.expireDue()).toBe(1);
    expect(await service.expireDue()).toBe(0);
    await notifier.idle();
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.closed:expired']);
    expect(events('/slack')).toEqual(['Approval needed', 'Expired']);
    expect(sinks.at('/hook')[1]!.body.request.requirement.missing).toEqual({ approvals: 1, groups: ['security'] });
    expect(sinks.at('/slack')[1]!.body.text).toContain('approved so far by pat@acme.test; still needed: 1 approval, including one from each of: security');
  });

  it('a decision after the expiry closes the request once', async () => {
    const request = await open(16);
    clock.t += 3600_000;
    await expect(service.decide(request.id, users.pat, 'approve', '')).rejects.toMatchObject({ code: 'request_closed' });
    expect(await service.expireDue()).toBe(0);
    await notifier.idle();
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.closed:expired']);
    expect(events('/slack')).toEqual(['Approval needed', 'Expired']);
  });

  it('a failed unblock closes as unblock_failed', async () => {
    const request = await open(17);
    bk.failUnblock = true;
    await service.decide(request.id, users.pat, 'approve', '');
    await expect(service.decide(request.id, users.sam, 'approve', '')).rejects.toMatchObject({ code: 'unblock_failed' });
    await notifier.idle();
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.closed:unblock_failed']);
    expect(events('/slack')).toEqual(['Approval needed', 'Unblock failed']);
    // The Buildkite error stays in the decision log, not in the chat.
    expect(JSON.stringify(sinks.received)).not.toContain('Buildkite answered 500');
  });

  it('a step that policy opens by itself sends nothing', async () => {
    blockedBuild(18, { branch: 'main', tag: 'v1.0.0', creator: { id: 'u2', email: 'dev@acme.test' } });
    await store.users.upsert({ email: 'dev@acme.test', active: true, groups: ['deployers'], updatedAt: 0 });
    await service.handleBlockedBuild('deploy', 18);
    await notifier.idle();
    expect(bk.unblocks).toHaveLength(1);
    expect(sinks.received).toEqual([]);
  });

  it('each delivery is in the decision log as approval_notified, without the URL', async () => {
    const request = await open(19);
    const notified = (await store.decisions.read(0, 100)).map((e) => e.record).filter((r) => r.action === 'approval_notified');
    expect(notified.map((r) => r.context.sink).sort()).toEqual(['slack', 'webhook']);
    expect(notified[0]).toMatchObject({ decision: 'allow', principal: 'Port::Build::"acme/deploy/19"', resource: 'Port::BlockStep::"acme/deploy/19/deploy"', context: { request_id: request.id, event: 'approval.opened' } });
    expect(await everythingSaid()).not.toMatch(/s3cr3t|SECRET/);
  });
});

describe('a failing sink never breaks approvals', () => {
  it('a sink answering 500 is retried once, reported without its URL, and the flow goes on', async () => {
    sinks.answers.set('/slack', [500, 500, 503, 503]);
    const request = await open(20);
    await service.decide(request.id, users.pat, 'approve', '');
    expect((await service.decide(request.id, users.sam, 'approve', '')).status).toBe('unblocked');
    await notifier.idle();
    expect(bk.unblocks).toHaveLength(1);
    expect(sinks.at('/slack')).toHaveLength(4); // two events, each tried twice
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.closed:unblocked']);
    expect(errors.map((e) => [e.sink, e.event, e.httpStatus, e.message])).toEqual([
      ['slack', 'approval.opened', 500, 'Slack notification for approval.opened failed: answered 500'],
      ['slack', 'approval.closed', 503, 'Slack notification for approval.closed failed: answered 503'],
    ]);
    expect(errors[0]).toBeInstanceOf(NotificationError);
    const failed = (await store.decisions.read(0, 100)).map((e) => e.record).filter((r) => r.action === 'approval_notify_failed');
    expect(failed).toHaveLength(2);
    expect(failed[0]).toMatchObject({ decision: 'deny', context: { sink: 'slack', http_status: 500 } });
    expect(await everythingSaid()).not.toMatch(/s3cr3t|SECRET|127\.0\.0\.1/);
  });

  it('a 5xx then a success delivers once, with no error', async () => {
    sinks.answers.set('/hook', [502]);
    await open(21);
    expect(sinks.at('/hook')).toHaveLength(2);
    expect(errors).toEqual([]);
  });

  it('a 4xx is not retried; a redirect is not followed', async () => {
    sinks.answers.set('/slack', [404]);
    sinks.answers.set('/hook', [302]);
    await open(22);
    expect(sinks.at('/slack')).toHaveLength(1);
    expect(sinks.at('/hook')).toHaveLength(1);
    expect(sinks.at('/redirected')).toHaveLength(0);
    expect(errors.map((e) => e.message).sort()).toEqual([
      'Slack notification for approval.opened failed: answered 404',
      'webhook notification for approval.opened failed: answered 302 (redirects are not followed)',
    ]);
  });

  it('a sink that never answers times out, is retried once, and does not hold up the request', async () => {
    sinks.answers.set('/hook', ['hang', 'hang']);
    notifier = ApprovalNotifier.fromConfig(config, { onError: (e) => errors.push(e), retryDelayMs: 10, timeoutMs: 500 })!;
    service = makeService(notifier);
    blockedBuild(23);
    const started = Date.now();
    await service.handleBlockedBuild('deploy', 23);
    // Awaiting the sink would take two 500 ms deadlines.
    expect(Date.now() - started).toBeLessThan(500);
    expect((await store.approvals.getByJob('block-23'))!.status).toBe('pending');
    await notifier.idle();
    expect(sinks.at('/hook')).toHaveLength(2);
    expect(sinks.at('/slack')).toHaveLength(1);
    expect(errors.map((e) => e.message)).toEqual(['webhook notification for approval.opened failed: no answer within 0.5 s']);
  });

  it('an unreachable sink is a network error naming no host, port or path', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const port = (dead.address() as AddressInfo).port;
    await new Promise<void>((r) => dead.close(() => r()));
    writeFileSync(join(dir, 'hook.url'), `http://user:pa55word@127.0.0.1:${port}/hook/${HOOK_SECRET}?token=${HOOK_SECRET}`);
    const request = await open(24);
    expect(request.status).toBe('pending');
    expect(errors).toHaveLength(1);
    expect(errors[0]!.message).toMatch(/^webhook notification for approval\.opened failed: network error \(ECONNREFUSED\)$/);
    const said = await everythingSaid();
    expect(said).not.toMatch(/s3cr3t|SECRET|pa55word/);
    expect(said).not.toContain(String(port));
    expect(sinks.at('/slack')).toHaveLength(1);
  });

  it('a secret that stops being a URL is reported by key, never by value', async () => {
    writeFileSync(join(dir, 'slack.url'), `not a url ${SLACK_SECRET}`);
    await open(25);
    expect(errors.map((e) => e.message)).toEqual(['Slack notification for approval.opened failed: approvals.notify.slack_webhook does not hold a valid URL']);
    expect(await everythingSaid()).not.toMatch(/s3cr3t|SECRET/);
    expect(sinks.at('/hook')).toHaveLength(1);
  });

  it('a notifier that throws or rejects goes to onNotifyError; approvals carry on', async () => {
    const reported: unknown[] = [];
    const broken: ApprovalNotifications = {
      opened: () => {
        throw new Error('boom (sync)');
      },
      closed: () => Promise.reject(new Error('boom (async)')),
    };
    service = makeService(broken, { onNotifyError: (err) => reported.push(err) });
    blockedBuild(26);
    await service.handleBlockedBuild('deploy', 26);
    const request = (await store.approvals.getByJob('block-26'))!;
    expect((await service.decide(request.id, users.sam, 'reject', '')).status).toBe('rejected');
    await new Promise((r) => setImmediate(r));
    expect(reported.map((e) => (e as Error).message)).toEqual(['boom (sync)', 'boom (async)']);
  });

  it('a quick close never overtakes a slow open', async () => {
    sinks.answers.set('/hook', [503]); // the open is retried; the close must wait for it
    notifier = ApprovalNotifier.fromConfig(config, { onError: (e) => errors.push(e), retryDelayMs: 150 })!;
    service = makeService(notifier);
    blockedBuild(27);
    await service.handleBlockedBuild('deploy', 27);
    const request = (await store.approvals.getByJob('block-27'))!;
    await service.decide(request.id, users.sam, 'reject', '');
    await notifier.idle();
    expect(events('/hook')).toEqual(['approval.opened:pending', 'approval.opened:pending', 'approval.closed:rejected']);
    expect(errors).toEqual([]);
  });
});

describe('approvals.notify config', () => {
  it('is absent by default, and takes secret references only', () => {
    const base = { server: { public_url: 'https://port.test' }, buildkite: { organization: 'acme' }, policies: './policies' };
    expect(configFromObject(base, join(dir, 'port.yaml')).approvals.notify).toBeUndefined();
    expect(ApprovalNotifier.fromConfig(configFromObject(base, join(dir, 'port.yaml')), { onError: () => undefined })).toBeUndefined();
    expect(config.approvals.notify).toEqual({
      slackWebhook: { ref: 'file:slack.url', key: 'approvals.notify.slack_webhook', baseDir: dir },
      webhook: { ref: 'file:hook.url', key: 'approvals.notify.webhook', baseDir: dir },
    });
    const inline = () => configFromObject({ ...base, approvals: { notify: { slack_webhook: 'https://hooks.slack.com/services/T/B/x' } } }, join(dir, 'port.yaml'));
    expect(inline).toThrow(ConfigError);
    expect(inline).toThrow(/approvals\.notify\.slack_webhook.*secret reference/);
    expect(() => configFromObject({ ...base, approvals: { notify: { teams: 'env:X' } } }, join(dir, 'port.yaml'))).toThrow(ConfigError);
    expect(() => configFromObject({ ...base, approvals: { notify: { webhook: 'file:missing.url' } } }, join(dir, 'port.yaml'))).toThrow(/approvals\.notify\.webhook/);
  });

  it('fromConfig refuses a secret that is not an http(s) URL, without quoting it', () => {
    writeFileSync(join(dir, 'hook.url'), `ftp://example.test/${HOOK_SECRET}`);
    const attempt = () => ApprovalNotifier.fromConfig(config, { onError: () => undefined });
    expect(attempt).toThrow(ConfigError);
    expect(attempt).toThrow(/approvals\.notify\.webhook: the secret file:hook\.url points to is not an http\(s\) URL/);
    try {
      attempt();
    } catch (err) {
      expect((err as Error).message).not.toContain('s3cr3t');
    }
  });
});

describe('message bodies', () => {
  const request: ApprovalRequestRecord = {
    id: 'req-1',
    jobId: 'job-1',
    buildId: 'build-1',
    build: { organization: 'acme', pipeline: 'deploy', number: 7, branch: 'x', tag: 'v2.0.0-<!channel>', commit: 'c'.repeat(40), source: 'ui' },
    step: { step: 'deploy', fields: { token: 'field-secret' }, label: 'Ship <https://evil.test|here> & *now*', key: 'deploy' },
    authors: ['dev@acme.test'],
    requirement: { approvals: 1, groups: [], policies: [{ id: 'p' }], reason: 'because' },
    status: 'rejected',
    createdAt: 0,
    expiresAt: 3600_000,
    closedAt: 60_000,
    approvals: [{ email: 'sam@acme.test', groups: ['security'], decision: 'reject', comment: 'my-comment', at: 60_000, policies: ['p'] }],
  };

  it('escapes build-controlled text for Slack so it cannot mention or link', () => {
    const opened = JSON.stringify(slackOpenedMessage(request, 'https://port.test/approvals/req-1'));
    expect(opened).not.toContain('<!channel>');
    expect(opened).not.toContain('<https://evil.test');
    expect(opened).toContain('v2.0.0-&lt;!channel&gt;');
    expect(opened).toContain('Ship &lt;https://evil.test|here&gt; &amp; *now*');
    expect(opened).toContain('*Tag*');
    expect(slackText('a\nb\u0007c')).toBe('a b c');
    expect(slackText('x'.repeat(500), 10)).toBe(`${'x'.repeat(9)}…`);
  });

  it('carries no comment and no field value', () => {
    const link = 'https://port.test/approvals/req-1';
    const all = JSON.stringify([slackOpenedMessage(request, link), slackClosedMessage(request, link), webhookNotification('approval.closed', request, link)]);
    expect(all).not.toContain('my-comment');
    expect(all).not.toContain('field-secret');
    expect(webhookNotification('approval.closed', request, link).request).toMatchObject({ tag: 'v2.0.0-<!channel>', closed_at: '1970-01-01T00:01:00.000Z', status: 'rejected' });
  });
});
