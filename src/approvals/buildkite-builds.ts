/**
 * What the approvals flow needs from Buildkite's REST API (buildkite.md §4.2): the
 * build with its jobs, and the unblock call. src/buildkite's client provides it; the
 * flow depends only on this shape.
 */
export interface BuildkiteUserRef {
  id?: string;
  name?: string;
  email?: string;
}

export interface BuildkiteJobSummary {
  id: string;
  type: string;
  state: string;
  label?: string | null;
  step_key?: string | null;
  unblockable?: boolean;
}

export interface BuildkiteBuildSummary {
  id: string;
  number: number;
  branch: string;
  tag?: string | null;
  commit: string;
  source: string;
  blocked?: boolean;
  creator?: BuildkiteUserRef | null;
  author?: BuildkiteUserRef | null;
  jobs: BuildkiteJobSummary[];
}

export interface BuildkiteBuildsApi {
  getBuild(pipeline: string, number: number): Promise<BuildkiteBuildSummary>;
  unblockJob(jobId: string, body: { fields?: Record<string, string>; unblocker?: string }): Promise<unknown>;
}
