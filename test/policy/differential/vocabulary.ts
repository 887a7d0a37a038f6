/**
 * The values policies and requests are drawn from. Both sides draw from the same pools, so
 * a request's strings and entity ids often equal a policy's literals, match its patterns,
 * or just miss them; the pools hold the edge cases on purpose (empty strings, `*` and `\`
 * in values, unicode in NFC and NFD, leading/trailing spaces, case variants).
 *
 * A `SetVocabulary` records, while one policy set is generated, what its policies read:
 * patterns and literals per string slot, entity literals per type, and the names of the
 * attributes, context keys and tags referenced. The request generator uses it to aim at
 * the policies (literal ids, matching strings) and to vary only what the set does not
 * read, which is what gives a projection-keyed memo its hits.
 */
import type { PortAction, PortEntityType } from '../../../src/policy/schema.js';
import type { Pattern } from './cedar-text.js';

const NFC_CAFE = 'caf\u00e9';
const NFD_CAFE = 'cafe\u0301';

export const ORGS = ['acme', 'globex', '\u00ff-org', 'acme-2'] as const;
export const PIPELINES = ['deploy', 'web', 'infra', 'd\u00e9ploi'] as const;
export const CLUSTERS = ['prod', 'dev', 'gpu*'] as const;
export const QUEUES = ['default', 'deploy', 'arm64', ''] as const;
export const GROUPS = ['deployers', 'admins', 'sre', 'Admins', 'ops/oncall', '\u00fcnï'] as const;
export const EMAILS = ['dev@acme.test', 'lead@acme.test', 'ops@globex.test', '\u00fcn\u00ef@acme.test', 'a*b@acme.test'] as const;
export const CREDENTIALS = ['npm-token', 'deploy-token', 'aws-prod', 'aws-dev', 'ssh*key', '\u00fcn\u00ef-cred', 'cred\\x'] as const;
export const UPSTREAMS = ['artifacts', 'registry', 's3', 'dynamo', 'api'] as const;
export const AUTOSCALERS = ['karpenter', 'asg', '\u00fcn\u00ef-scaler'] as const;
export const LITERAL_JOBS = ['job-1', '018f2c1e-0000-4000-a000-000000000001'] as const;
export const LITERAL_AGENTS = ['agent-1', 'agent-2'] as const;
export const ATTESTATION = ['buildkite', 'aws_iam', 'aws_iid'] as const;
export const TAG_NAMES = ['queue', 'os', 'env', 'arch', 'branch'] as const;
export const BLOCK_FIELDS = ['release-name', 'env', 'ticket'] as const;
export const STEP_KEYS = ['deploy', 'release', 'approve-prod', 'd\u00e9ploi'] as const;
export const BUILD_NUMBERS = [1, 2, 3, 7, 8, 9, 10, 42, 100, 4096, 123456, 9007199254740991] as const;
export const SCALE_COUNTS = [0, 1, 2, 3, 5, 10, 11, 50, 100, 101, 1000, 9007199254740991] as const;

/** Base strings per string slot: policies derive patterns and literals from them, requests values. */
export const SLOT_POOLS: Readonly<Record<string, readonly string[]>> = {
  branch: ['main', 'master', 'develop', 'release/1.2', 'release/2.0', 'feature/login', 'feat/\u00fc', '', 'rel*ease', 'back\\slash', NFC_CAFE, NFD_CAFE, '\u{1F680}-launch', 'MAIN', ' main', 'main ', 'a"quote', 'main\n', 'hotfix-(1)+[2]?', 'a\nb', 'v1.2'],
  tag: ['', 'v1.2.3', 'v2.0.0-rc1', 'v*', 'latest', 'V1.2.3'],
  commit: ['0000000000000000000000000000000000000000', 'abc123', 'deadbeefdeadbeefdeadbeefdeadbeefdeadbeef'],
  step_key: ['', 'deploy', 'build', 'test', 'deploy-prod', '*'],
  build_source: ['webhook', 'api', 'ui', 'trigger_job', 'schedule'],
  runner_environment: ['self-hosted', 'buildkite-hosted'],
  pipeline_slug: [...PIPELINES],
  organization_slug: [...ORGS],
  pipeline_id: ['01890000-0000-4000-a000-00000000p001', '01890000-0000-4000-a000-00000000p002'],
  organization_id: ['01890000-0000-4000-a000-00000000o001', ''],
  build_id: ['01890000-0000-4000-a000-00000000b001', '01890000-0000-4000-a000-00000000b002'],
  cluster_id: ['c-1', 'c-2'],
  cluster_name: [...CLUSTERS],
  queue_id: ['q-1', 'q-2'],
  queue_key: [...QUEUES],
  source: ['webhook', 'api', 'ui', 'trigger_job'],
  region: ['us-east-1', 'eu-west-1', 'ap-southeast-2'],
  account: ['123456789012', '210987654321'],
  instance_id: ['i-0abc123def4567890', 'i-0fff'],
  iam_role: ['arn:aws:iam::123456789012:role/ci-deploy', 'arn:aws:iam::210987654321:role/ci-build', 'arn:aws:iam::123456789012:role/ci-*'],
  path: ['/', '', '/api/v1/items', '/api/v1/items/42', '/api/v2/items', '/admin', '/admin/users', '/api/v1/admin', '/a*b', '/a\\b', '/\u00fcn\u00ef/\u00e7\u00f8d\u00e9', `/${NFC_CAFE}`, `/${NFD_CAFE}`, '//double', '/api/v1/items%3Fx', '/%2e%2e/etc', '/API/v1/items', '/v1.0/a?b=c', '/^$|\\d', '/a\r\nb'],
  method: ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'get', 'PATCH'],
  audience: ['port', 'https://port.example', '', 'https://port.example/extra', 'PORT'],
  aws_target: ['DynamoDB_20120810.GetItem', 'DynamoDB_20120810.PutItem', 'DynamoDB_20120810.DeleteTable', 'AmazonSQS.SendMessage', ''],
  aws_query_key: ['acl', 'list-type', 'prefix', 'policy', 'versioning', '*', ''],
  scope: [...CREDENTIALS],
  step_label: ['Deploy to prod', 'Deploy', ':rocket: Release', '', 'Approve*', 'deploy'],
  'ctx.step_key': ['', ...STEP_KEYS],
  'tag:queue': ['default', 'deploy', 'arm64', ''],
  'tag:os': ['linux', 'windows', 'Linux'],
  'tag:env': ['prod', 'dev', 'prod*', NFC_CAFE],
  'tag:arch': ['amd64', 'arm64'],
  'tag:branch': ['main', 'release/1.2', ''],
  'field:release-name': ['v1.2.3', 'hotfix', '', 'v*'],
  'field:env': ['prod', 'staging', 'Prod'],
  'field:ticket': ['OPS-1', 'OPS-12', ''],
};

/** Strings that go into requests only, to find places where projection and Cedar part ways. */
export const EDGE_STRINGS = ['', '*', '**', '\\', '\\*', '\u00fc', '\u0000', '\u{1F680}', NFD_CAFE, NFC_CAFE, ' ', 'main\u200b', '"', '\u{10FFFF}', 'a\nb', '\r\n', '.', '.*', '(?:x)'];

export function slotPool(slot: string): readonly string[] {
  const pool = SLOT_POOLS[slot];
  if (pool === undefined) throw new Error(`no pool for slot ${slot}`);
  return pool;
}

/** What one generated policy set reads; filled in by the policy generator. */
export class SetVocabulary {
  readonly patterns = new Map<string, Pattern[]>();
  readonly literals = new Map<string, string[]>();
  readonly entities = new Map<PortEntityType, Set<string>>();
  /** Attribute names, context keys (`ctx.NAME`), tag names (`tag:NAME`), block-step fields (`field:NAME`). */
  readonly reads = new Set<string>();
  /** The actions the set's policies name (an unconstrained action adds none). */
  readonly actions = new Set<PortAction>();

  /** Credentials and upstreams the set names; a big set adds its own. */
  credentials: string[] = [...CREDENTIALS];
  upstreams: string[] = [...UPSTREAMS];

  addPattern(slot: string, pattern: Pattern): void {
    this.reads.add(slot);
    push(this.patterns, slot, pattern);
  }

  addLiteral(slot: string, text: string): void {
    this.reads.add(slot);
    push(this.literals, slot, text);
  }

  addEntity(type: PortEntityType, id: string): void {
    let ids = this.entities.get(type);
    if (ids === undefined) this.entities.set(type, (ids = new Set()));
    ids.add(id);
  }

  isLiteral(type: PortEntityType, id: string): boolean {
    return this.entities.get(type)?.has(id) ?? false;
  }

  literalIds(type: PortEntityType): string[] {
    return [...(this.entities.get(type) ?? [])];
  }
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list === undefined) map.set(key, [value]);
  else list.push(value);
}
