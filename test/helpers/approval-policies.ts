/** Policies for the approvals tests: auto-unblock for release tags, platform + security review otherwise. */
export const APPROVAL_POLICIES = `
@id("release-tags-open")
@reason("release tags from main built by a deployer open by themselves")
permit (principal is Port::Build, action == Port::Action::"unblock", resource)
when { principal.branch == "main" && principal.tag like "v*" && principal has creator && principal.creator in Port::Group::"deployers" };

@id("feature-deploys-need-review")
@reason("deploys from other branches need platform and security sign-off")
@approval_groups("platform security")
forbid (principal is Port::Build, action == Port::Action::"unblock", resource)
when { principal.branch != "main" };

@id("platform-approves")
@reason("platform engineers approve deploys")
permit (principal in Port::Group::"platform", action == Port::Action::"approve", resource);

@id("security-approves")
@reason("security engineers approve deploys")
permit (principal in Port::Group::"security", action == Port::Action::"approve", resource);
`;
