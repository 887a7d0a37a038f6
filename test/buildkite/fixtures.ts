/** Buildkite REST bodies in the documented shapes (pages/apis/rest_api/{builds,jobs,agents}.md). */

export const ORG = 'acme';
export const TOKEN = 'bkua_secret_token_value_0123456789';

export const creator = {
  id: '3d3c3bf0-7d58-4afe-8fe7-b3017d5504de',
  graphql_id: 'VXNlci0tLTNkM2MzYmYwLTdkNTgtNGFmZS04ZmU3LWIzMDE3ZDU1MDRkZQ==',
  name: 'Keith Pitt',
  email: 'keith@example.com',
  avatar_url: 'https://www.gravatar.com/avatar/e14f55d3f939977cecbf51b64ff6f861',
  created_at: '2015-05-22T12:36:45.309Z',
};

export const scriptJob = {
  id: 'b63254c0-3271-4a98-8270-7cfbd6c2f14e',
  graphql_id: 'Sm9iLS0tYjYzMjU0YzA=',
  type: 'script',
  name: ':package: Build',
  step_key: 'build',
  step: { id: '018c0f56-c87c-47e9-95ee-aa47397b4496', signature: null },
  agent_query_rules: [],
  state: 'passed',
  command: 'scripts/build.sh',
  soft_failed: false,
  exit_status: 0,
  agent: null,
  created_at: '2015-05-09T21:05:59.874Z',
  finished_at: '2015-05-09T21:06:20.000Z',
};

/** Waiter jobs carry little more than id and type. */
export const waiterJob = { id: '4f6e5a2c-0000-4000-8000-000000000001', graphql_id: 'Sm9i', type: 'waiter' };

export const manualJob = {
  id: 'ded35de2-7de0-4da8-8daa-b4ce0b7f1064',
  graphql_id: 'Sm9iLS0tZGVkMzVkZTI=',
  type: 'manual',
  label: 'Deploy',
  step_key: 'deploy-gate',
  state: 'blocked',
  web_url: null,
  unblocked_by: null,
  unblocked_at: null,
  unblockable: true,
  unblock_url: 'https://buildkite.com/acme/web/builds/7#ded35de2-7de0-4da8-8daa-b4ce0b7f1064',
};

export const build = {
  id: 'f62a1b4d-10f9-4790-bc1c-e2c3a0c80983',
  graphql_id: 'QnVpbGQtLS1mNjJhMWI0ZA==',
  url: 'https://api.buildkite.com/v2/organizations/acme/pipelines/web/builds/7',
  web_url: 'https://buildkite.com/acme/web/builds/7',
  number: 7,
  state: 'passed',
  blocked: true,
  cancel_reason: null,
  message: 'Release 1.2.0',
  commit: 'abcd0b72a1e580e90712cdd9eb26d3fb41cd09c8',
  branch: 'main',
  tag: 'v1.2.0',
  env: {},
  source: 'ui',
  creator,
  author: { username: 'kp', name: 'Keith Pitt', email: 'keith@example.com' },
  jobs: [scriptJob, waiterJob, manualJob],
  created_at: '2015-05-09T21:05:59.874Z',
  finished_at: '2015-05-09T21:06:30.000Z',
  meta_data: {},
  pull_request: null,
  pipeline: { id: '849411f9-9e6d-4739-a0d8-e247088e9b52', slug: 'web', name: 'Web' },
};

export const agent = {
  id: '0b461f65-e7be-4c80-888a-ef11d81fd971',
  graphql_id: 'QWdlbnQtLS0wYjQ2MWY2NQ==',
  url: 'https://api.buildkite.com/v2/organizations/acme/agents/0b461f65-e7be-4c80-888a-ef11d81fd971',
  name: 'my-agent',
  connection_state: 'connected',
  hostname: 'some.server',
  ip_address: '144.132.19.12',
  user_agent: 'buildkite-agent/3.80.0 (linux; amd64)',
  version: '3.80.0',
  creator,
  created_at: '2015-05-09T21:05:59.874Z',
  job: scriptJob,
  last_job_finished_at: null,
  priority: null,
  meta_data: ['queue=deploy', 'os=linux'],
};
