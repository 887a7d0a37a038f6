/**
 * The steps `port demo` prints. Every line that is not a comment (`#`) is a shell command
 * that works pasted as it is into another terminal in the same directory; URLs to open in
 * a browser are inside comments. Commands run this package's own bin by path (`node
 * bin/port.js`), never through npx: the registry's `port` is an unrelated package.
 */

export interface Walkthrough {
  /** The folder the demo was started in (where the commands run). */
  cwd: string;
  /** The demo folder, relative to `cwd` when inside it. */
  dir: string;
  /** `node <path to bin/port.js>`. */
  port: string;
  /** `fresh`, or `continued` with `--keep`. */
  state: 'fresh' | 'continued';
  /** `--keep` was given (with nothing to continue, the run is fresh). */
  keep: boolean;
  portUrl: string;
  simUrl: string;
  idpUrl: string;
  artifactsUrl: string;
  stsUrl: string;
  storePath: string;
  policies: string;
  /** The deploy job on main (its id, for the revocation). */
  mainJobId: string;
  /** The demo jobs' `pools:` entry, `CLUSTER/QUEUE`. */
  pool: string;
  /** The queue of the agent that acquired a deploy job outside that pool. */
  otherQueue: string;
  approval: {
    url: string;
    pipeline: string;
    buildNumber: number;
    blockJobId: string;
    stepLabel: string;
    approver: string;
    author: string;
    password: string;
  };
}

export function walkthroughText(w: Walkthrough): string {
  const d = w.dir;
  const bearer = `-H "Authorization: Bearer $(cat ${d}/deploy-main.token)"`;
  const relay = (path: string) => `curl -s -w '\\nHTTP %{http_code}\\n' ${bearer} ${w.portUrl}/relay/artifacts${path}`;
  const creds = `PORT_TOKEN=$(cat ${d}/deploy-main.token) ${w.port} creds aws-deploy --url ${w.portUrl}`;
  const a = w.approval;
  const exchange = `${w.port} token exchange`;
  return [
    '',
    w.state === 'continued'
      ? `Continuing with the store in ${d}/ (--keep): earlier decisions, revocations and signing keys are still there.`
      : w.keep
        ? `Started from a clean state in ${d}/ (--keep, but there was no store to continue).`
        : `Started from a clean state in ${d}/ (the previous run's store, tokens and secrets were removed; --keep continues instead).`,
    `Port is running at ${w.portUrl} (store: ${w.storePath}, policies: ${w.policies})`,
    `A Buildkite simulator is issuing job tokens at ${w.simUrl} (organization "acme").`,
    `The demo identity provider for approvers is at ${w.idpUrl}; an internal "artifacts API" is at ${w.artifactsUrl};`,
    `an AWS STS simulator is at ${w.stsUrl}.`,
    '',
    `In another terminal, in ${w.cwd}:`,
    '',
    `  # Each ${d}/*.env file is what the Buildkite agent gives one job's processes (job id, job`,
    '  # token, Job API socket), and puts a buildkite-agent stand-in that asks the simulator for',
    '  # job tokens on PATH. The commands source one in a subshell, as a job would run.',
    '',
    '  # 1. THE EXCHANGE: a deploy job on main exchanges its Buildkite token for a Port token with the deploy grant',
    "  #    (port asks Buildkite to name the job's cluster and queue in the token: its agent pool, which Port checks too, step 4)",
    `  (. ${d}/deploy-main.env && ${exchange} --scope deploy-token --json)`,
    '',
    '  # the same pipeline on a feature branch is denied that grant, with the reason',
    `  (. ${d}/deploy-feature.env && ${exchange} --scope deploy-token)`,
    '',
    `  # 2. THE RELAY: the deploy job keeps a Port token in ${d}/deploy-main.token (its grant, aws-deploy, is for step 3)`,
    `  (. ${d}/deploy-main.env && umask 077 && ${exchange} --scope aws-deploy > ${d}/deploy-main.token)`,
    '',
    "  # through Port's relay the job reads the artifacts API; Port adds the API's key, which the job never holds",
    `  ${relay('/reports/build-1.json')}`,
    '',
    '  # the policy keeps jobs off the admin API: denied, with the reason',
    `  ${relay('/admin/keys')}`,
    '',
    '  # 3. AWS CREDENTIALS from the STS simulator, as the JSON an AWS CLI credential_process prints',
    `  ${creds}`,
    '',
    `  # the AWS CLI uses the same command as a profile's credential_process (${d}/aws-config)`,
    `  if command -v aws >/dev/null; then AWS_CONFIG_FILE=${d}/aws-config aws sts get-caller-identity --profile port-demo; else echo "no AWS CLI here; the profile is in ${d}/aws-config"; fi`,
    '',
    `  # 4. AGENT POOLS: pool ${w.pool} in port.yaml requires the buildkite check, so every exchange above also proved, with Buildkite's`,
    "  #    REST API, that the job runs on the token's agent and that this agent is connected and registered in the pool.",
    `  # an agent of queue ${w.otherQueue} took a deploy job on main (buildkite-agent start --acquire-job): the policy allows it, the pool refuses it`,
    `  (. ${d}/deploy-acquired.env && ${exchange} --scope deploy-token)`,
    '',
    '  # every agent that received something from Port, and how it was checked then (exit 1 if a pool served one it requires more of)',
    `  ${w.port} agents audit -c ${d}/port.yaml`,
    '',
    "  # the config and its policies checked before they ship: names the config lacks, permits without @reason, credentials no policy can reach",
    `  ${w.port} policy lint -c ${d}/port.yaml`,
    '',
    `  # 5. AN APPROVAL: build ${a.pipeline} #${a.buildNumber}, started by ${a.author}, waits at the block step "${a.stepLabel}",`,
    `  #    and Port opened an approval request. Open it in your browser:`,
    `  #      ${a.url}`,
    `  #    sign in at the demo identity provider as ${a.approver} (password: ${a.password}), who is in the approvers group,`,
    `  #    and approve. (Signed in as ${a.author}, the build's author, Port won't let you approve your own build.)`,
    '  # then see the block step unblocked in the simulator ("state": "unblocked", "unblocked_by" the approver):',
    `  curl -s -H "Authorization: Bearer $(cat ${d}/buildkite-api-token)" ${w.simUrl}/v2/organizations/acme/pipelines/${a.pipeline.split('/')[1]}/builds/${a.buildNumber}/jobs/${a.blockJobId}`,
    '',
    "  # 6. A REVOCATION: revoke the deploy job (with the admin token named by server.admin_token in port.yaml)",
    `  ${w.port} revoke job ${w.mainJobId} -c ${d}/port.yaml --reason "demo: the deploy job's token leaked"`,
    '',
    '  # the same Port token is refused from now on, at the relay and for credentials, with the reason',
    `  ${relay('/reports/build-1.json')}`,
    `  ${creds}`,
    '',
    '  # 7. THE AUDIT LOG: every decision above is in a hash-chained, signed log; check it, then read it',
    `  ${w.port} audit verify -c ${d}/port.yaml`,
    `  ${w.port} audit tail -c ${d}/port.yaml -n 50 --no-follow`,
    '',
    '  # the policies and their tests',
    `  ${w.port} policy test --policies ${w.policies}`,
    '',
    'Press Ctrl-C to stop.',
    '',
  ].join('\n');
}
