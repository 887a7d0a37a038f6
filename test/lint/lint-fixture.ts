import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { loadConfig, type PortConfig } from '../../src/config/config.js';
import type { LintFinding } from '../../src/lint/finding.js';
import { lintConfig } from '../../src/lint/lint.js';

/** A policy set that reaches every credential and upstream of `base()` and has reasons. */
export const GOOD_POLICIES: Record<string, string> = {
  'exchange.cedar': `@id("acme-exchange")
@reason("any acme job may hold a Port token")
permit (principal is Port::Job, action == Port::Action::"exchange", resource == Port::Organization::"acme");
`,
  'deploy.cedar': `@id("deploy-main")
@reason("deploy builds of main may assume the deploy role")
permit (principal is Port::Job in Port::Pipeline::"acme/deploy", action == Port::Action::"assume", resource == Port::Credential::"ci-prod-deployer")
when { principal.branch == "main" };
`,
};

export function base(): Record<string, unknown> {
  return {
    server: { listen: '127.0.0.1:0', public_url: 'https://port.acme.test' },
    buildkite: { organization: 'acme' },
    credentials: {
      'ci-prod-deployer': {
        type: 'aws_role',
        role_arn: 'arn:aws:iam::123456789012:role/ci/ci-prod-deployer',
        session_tags: { pipeline: 'pipeline_slug' },
      },
    },
  };
}

/** Temp folders for one test file; `cleanup()` in afterAll. */
export function fixtures(prefix: string) {
  const root = mkdtempSync(join(tmpdir(), `port-lint-${prefix}-`));
  let n = 0;
  return {
    root,
    /** Writes port.yaml, policies/*.cedar and any extra files into a fresh folder; returns port.yaml's path. */
    write(config: Record<string, unknown>, policies: Record<string, string> = GOOD_POLICIES, files: Record<string, string> = {}): string {
      const dir = join(root, `case-${++n}`);
      mkdirSync(join(dir, 'policies'), { recursive: true });
      for (const [f, text] of Object.entries(policies)) writeFileSync(join(dir, 'policies', f), text);
      for (const [f, text] of Object.entries(files)) {
        mkdirSync(join(dir, f, '..'), { recursive: true });
        writeFileSync(join(dir, f), text);
      }
      const file = join(dir, 'port.yaml');
      writeFileSync(file, stringify(config));
      return file;
    },
    load(file: string): PortConfig {
      return loadConfig(file, { resolveSecrets: false });
    },
    async lint(config: Record<string, unknown>, policies?: Record<string, string>, files?: Record<string, string>, trustPolicies?: string[]): Promise<LintFinding[]> {
      const file = this.write(config, policies, files);
      return lintConfig(this.load(file), { cwd: join(file, '..'), ...(trustPolicies ? { trustPolicies } : {}) });
    },
    cleanup(): void {
      rmSync(root, { recursive: true, force: true });
    },
  };
}

/** The findings of one rule. */
export function ofRule(findings: readonly LintFinding[], rule: string): LintFinding[] {
  return findings.filter((f) => f.rule === rule);
}

/** `policies/FILE:LINE:COLUMN` of the first `needle` in `text` (1-based, as lint reports it). */
export function at(file: string, text: string, needle: string): string {
  const index = text.indexOf(needle);
  if (index < 0) throw new Error(`${needle} not in ${file}`);
  const before = text.slice(0, index).split('\n');
  return `policies/${file}:${before.length}:${before.at(-1)!.length + 1}`;
}
