import type { BuildkiteBuildSummary, BuildkiteBuildsApi } from '../../src/approvals/buildkite-builds.js';

/** An in-memory stand-in for the part of Buildkite's REST API the approvals flow calls. */
export class FakeBuildkite implements BuildkiteBuildsApi {
  builds = new Map<string, BuildkiteBuildSummary>();
  unblocks: { jobId: string; body: unknown }[] = [];
  /** e-mail → Buildkite user id, for `unblocker`. */
  members = new Map<string, string>();
  failUnblock = false;
  cancels: string[] = [];

  async findOrganizationMemberByEmail(email: string) {
    const id = this.members.get(email);
    return id === undefined ? undefined : { id };
  }

  async getBuild(pipeline: string, number: number) {
    const b = this.builds.get(`${pipeline}/${number}`);
    if (!b) throw new Error('404');
    return b;
  }

  async unblockJob(jobId: string, body: unknown) {
    if (this.failUnblock) throw new Error('Buildkite answered 500');
    this.unblocks.push({ jobId, body });
    return {};
  }

  async cancelBuild(pipeline: string, number: number) {
    this.cancels.push(`${pipeline}/${number}`);
    return {};
  }
}
