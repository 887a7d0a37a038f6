/**
 * What `port init` writes: a commented starter `port.yaml`, a policy folder with Cedar
 * policies for one Buildkite organization, and test cases for `port policy test`. The
 * files are valid as written (`port config check` and `port policy test` pass once the
 * secrets named in STARTER_SECRETS are set); the tests of `port init` check that.
 */

/** The environment variables the starter config refers to, and what each one is. */
export const STARTER_SECRETS = [
  { name: 'PORT_ADMIN_TOKEN', what: 'the bearer token of the admin API (port revoke, port rotate)' },
  {
    name: 'PORT_KEY_ENCRYPTION_KEY',
    what: "seals Port's signing keys in its database: create it once and keep it, Port needs the same value on every start",
  },
] as const;

export interface StarterOptions {
  /** The Buildkite organization slug (validated by the caller). */
  organization: string;
  /** `server.public_url`. */
  publicUrl: string;
  /** `server.listen`. */
  listen: string;
}

export interface StarterFile {
  /** Path relative to the target folder, with `/`. */
  path: string;
  text: string;
}

export function starterFiles(o: StarterOptions): StarterFile[] {
  return [
    { path: 'port.yaml', text: portYaml(o) },
    { path: 'policies/exchange.cedar', text: exchangeCedar(o) },
    { path: 'policies/credentials.cedar', text: credentialsCedar(o) },
    { path: 'policies/upstreams.cedar', text: upstreamsCedar(o) },
    { path: 'policies/policies.test.yaml', text: policyTests(o) },
  ];
}

/** A slug no test case of `organization` uses, for "another organization may not". */
function otherOrganization(organization: string): string {
  return organization === 'globex' ? 'initech' : 'globex';
}

function portYaml(o: StarterOptions): string {
  const [admin, kek] = STARTER_SECRETS;
  return `# Port's configuration for the Buildkite organization "${o.organization}", written by \`port init\`.
#
# Check it (with the policies) after every change:   port config check -c port.yaml
# Every key and its default:                          port config schema
#   (a JSON Schema; save it as port.schema.json and add the line
#    "# yaml-language-server: $schema=./port.schema.json" at the top for editor help)
#
# Secrets are never written here: each one is a reference, env:NAME (an environment
# variable) or file:PATH (a file, relative to this one). Port reads them at start.

server:
  # Where Port listens. Put a TLS-terminating proxy in front of it for agents on other hosts.
  listen: ${o.listen}
  # The URL jobs and services reach Port at. It is the issuer (iss) of Port's tokens,
  # and jobs request their Buildkite OIDC token for this audience.
  public_url: ${o.publicUrl}
  # The admin API (revocations, secret rotation) accepts this bearer token; without the
  # key the admin API is off. ${admin.name}: ${admin.what}.
  admin_token: env:${admin.name}

store:
  # One SQLite file, relative to this file. For several replicas use PostgreSQL instead:
  #   postgres: env:PORT_DATABASE_URL
  sqlite: ./port.db

buildkite:
  # Every Buildkite organization shares one OIDC token issuer, so Port checks that each
  # token belongs to this organization (the organization_slug claim).
  organization: ${o.organization}
  # Also pin the organization's UUID (the organization_id claim) once you know it:
  # organization_id: 00000000-0000-0000-0000-000000000000
  #
  # The audience jobs request tokens for; the default is server.public_url:
  #   buildkite-agent oidc request-token --audience ${o.publicUrl}
  # (https://buildkite.com/docs/agent/v3/cli-oidc)
  # audience: ${o.publicUrl}
  #
  # A REST API token (scopes read_builds, write_builds, read_organizations)
  # turns on approvals and tells Port who started each build:
  # api_token: env:BUILDKITE_API_TOKEN
  #
  # Buildkite webhooks (https://buildkite.com/docs/apis/webhooks) end jobs' tokens when
  # their job finishes; verify them with the webhook's token or signature secret:
  # webhook_token: env:BUILDKITE_WEBHOOK_TOKEN

# The Cedar policies (*.cedar) and their tests (*.test.yaml), relative to this file.
# Check them with: port policy test -c port.yaml
policies: ./policies

issuer:
  # How long a Port token lives.
  token_ttl: 15m
  # ${kek.name}: ${kek.what}.
  key_encryption_key: env:${kek.name}

# What a job may ask Port for (the scope of its token exchange). Each one is decided by
# the policies (action "assume", resource Port::Credential::"<name>").
credentials:
  # A JWT signed by Port for a service that trusts Port's keys
  # (${o.publicUrl}/.well-known/jwks.json) and checks this audience.
  deploy-token:
    type: port_token
    description: deploys from the ${o.organization}/deploy pipeline
    audience: https://deploy.example.com
    ttl: 10m
  # A secret Port hands out (value: env:NAME, file:PATH or command:CMD):
  # npm-publish:
  #   type: secret
  #   value: env:NPM_PUBLISH_TOKEN
  # Temporary AWS credentials through STS, with Port as the OIDC identity provider:
  # aws-deploy:
  #   type: aws_role
  #   role_arn: arn:aws:iam::123456789012:role/deploy
  #   region: us-east-1

# Services jobs reach through Port's relay at ${o.publicUrl}/relay/<name>/…; Port adds
# the service's credential and decides each request (action "proxy", resource
# Port::Upstream::"<name>"; see policies/upstreams.cedar).
upstreams: {}
#  artifacts:
#    url: https://artifacts.example.com
#    inject:
#      bearer: env:ARTIFACTS_TOKEN
`;
}

function exchangeCedar(o: StarterOptions): string {
  return `// Who may hold a Port token at all: action "exchange", resource = the Buildkite
// organization. Nothing is allowed unless a permit allows it, and a forbid always wins.
// Policy syntax: https://docs.cedarpolicy.com/policies/syntax-policy.html
// Try a request: port policy explain -c port.yaml --action exchange --claims job.json

@id("jobs-may-exchange")
@reason("jobs of ${o.organization} may exchange their Buildkite token for a Port token")
permit (
  principal is Port::Job,
  action == Port::Action::"exchange",
  resource == Port::Organization::"${o.organization}"
);

// A build a webhook started on a branch other than main (a pull request, a feature
// branch) runs code nobody has reviewed yet: it gets no Port token. Tag builds (their
// branch is the tag's name) are release builds and stay allowed. If your default branch
// is not main, change it here and in policies.test.yaml.
@id("unreviewed-branches-no-token")
@reason("webhook builds of branches other than main get no Port token")
forbid (
  principal is Port::Job,
  action == Port::Action::"exchange",
  resource
)
when {
  principal.build_source == "webhook" &&
  principal.branch != "main" &&
  principal.tag == ""
};
`;
}

function credentialsCedar(o: StarterOptions): string {
  return `// Brokered credentials: action "assume", resource = a credential named under
// credentials: in port.yaml. A credential no permit names is never handed out.

// A job is "in" its pipeline, so this names every job of ${o.organization}/deploy.
@id("deploy-token-main")
@reason("only ${o.organization}/deploy builds of main may use the deploy token")
permit (
  principal is Port::Job in Port::Pipeline::"${o.organization}/deploy",
  action == Port::Action::"assume",
  resource == Port::Credential::"deploy-token"
)
when { principal.branch == "main" };
`;
}

function upstreamsCedar(o: StarterOptions): string {
  return `// The relay: action "proxy", resource = an upstream named under upstreams: in
// port.yaml; context.method is the HTTP method and context.path the normalised path
// Port forwards. Uncomment this with the artifacts upstream in port.yaml.

// @id("artifacts-read-only")
// @reason("${o.organization} jobs may read, not write, the artifact store")
// permit (
//   principal is Port::Job,
//   action == Port::Action::"proxy",
//   resource == Port::Upstream::"artifacts"
// )
// when { context.method == "GET" || context.method == "HEAD" };
`;
}

function policyTests(o: StarterOptions): string {
  const other = otherOrganization(o.organization);
  return `# Cases for \`port policy test -c port.yaml\`. Claims a case leaves out are defaults: a
# webhook build #1 of ${o.organization}/app on main, on a self-hosted agent, without a tag. Claim
# names are Buildkite's (https://buildkite.com/docs/agent/v3/cli-oidc).
defaults:
  claims:
    organization_slug: ${o.organization}

cases:
  # exchange: may this job hold a Port token?
  - name: a main build may exchange
    claims: { pipeline_slug: app, build_branch: main }
    action: exchange
    expect:
      decision: allow
      policies: [jobs-may-exchange]

  - name: a webhook build of a feature branch may not
    claims: { pipeline_slug: app, build_branch: feature/login, build_source: webhook }
    action: exchange
    expect:
      decision: deny
      policies: [unreviewed-branches-no-token]
      reasons: ["other than main"]

  - name: the same branch built from the UI may
    claims: { pipeline_slug: app, build_branch: feature/login, build_source: ui }
    action: exchange
    expect: { decision: allow, policies: [jobs-may-exchange] }

  - name: a release tag build may
    claims: { build_branch: v1.0.0, build_tag: v1.0.0, build_source: webhook }
    action: exchange
    expect: { decision: allow }

  - name: a job of another organization may not
    claims: { organization_slug: ${other} }
    action: exchange
    expect: { decision: deny, policies: [] }

  # assume: brokered credentials
  - name: ${o.organization}/deploy on main gets the deploy token
    claims: { pipeline_slug: deploy, build_branch: main }
    action: assume
    resource: { credential: deploy-token }
    expect: { decision: allow, policies: [deploy-token-main] }

  - name: ${o.organization}/deploy on another branch does not
    claims: { pipeline_slug: deploy, build_branch: hotfix/1, build_source: ui }
    action: assume
    resource: { credential: deploy-token }
    expect: { decision: deny, policies: [] }

  - name: another pipeline on main does not
    claims: { pipeline_slug: app, build_branch: main }
    action: assume
    resource: { credential: deploy-token }
    expect: { decision: deny }
`;
}
