/**
 * What the approvals flow needs from Buildkite's REST API (https://buildkite.com/docs/apis/rest-api/builds
 * and .../rest-api/jobs): the
 * build with its jobs, and the unblock call. src/buildkite's client provides it; the
 * flow depends only on this shape.
 */
export interface BuildkiteUserRef {
  id?: string | null;
  name?: string | null;
  email?: string | null;
}

export interface BuildkiteJobSummary {
  id: string;
  type: string;
  state: string | null;
  label?: string | null;
  step_key?: string | null;
  unblockable?: boolean | null;
}

export interface BuildkiteBuildSummary {
  id: string;
  number: number;
  branch: string | null;
  tag?: string | null;
  commit: string | null;
  source: string | null;
  /** `running`, `passed`, `canceled`, … (a blocked build keeps its earlier state and sets `blocked`: https://buildkite.com/docs/apis/rest-api/builds). */
  state?: string | null;
  blocked?: boolean | null;
  creator?: BuildkiteUserRef | null;
  author?: BuildkiteUserRef | null;
  /** Absent when the API was asked to exclude jobs (Port never does). */
  jobs?: BuildkiteJobSummary[];
}

export interface BuildkiteBuildsApi {
  getBuild(pipeline: string, number: number): Promise<BuildkiteBuildSummary>;
  unblockJob(jobId: string, body: { fields?: Record<string, string>; unblocker?: string }): Promise<unknown>;
  /** Cancels the build (an expired request with `on_expiry: fail`). */
  cancelBuild?(pipeline: string, number: number): Promise<unknown>;
  /** The organization member with this e-mail, to credit as `unblocker` (https://buildkite.com/docs/apis/rest-api/organizations/members). */
  findOrganizationMemberByEmail?(email: string): Promise<{ id: string } | undefined>;
}
