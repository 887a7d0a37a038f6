/**
 * deploy/systemd: the unit and its sysusers file, checked with systemd's own tools, which
 * work on unit files without a running systemd (this machine and CI have none):
 * - `systemd-analyze verify` parses the unit as systemd would and reports unknown or invalid
 *   settings and a missing command; the unit must produce no message at all;
 * - `systemd-analyze security --offline` rates the sandbox the unit asks for;
 * - `systemd-sysusers --dry-run` reads the sysusers file into a scratch root.
 * And the reason the unit leaves out MemoryDenyWriteExecute=, shown rather than told: Node.js
 * run under the kernel's memory-deny-write-execute (prctl PR_SET_MDWE, which systemd uses for
 * that setting where the kernel has it) aborts as soon as V8 compiles code.
 *
 * Without systemd-analyze the systemd checks are skipped with the reason in their names,
 * except under CI, where they fail: CI must check what ships.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const UNIT = join(ROOT, 'deploy', 'systemd', 'port.service');
const SYSUSERS = join(ROOT, 'deploy', 'systemd', 'port.sysusers.conf');
const unitText = readFileSync(UNIT, 'utf8');

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() : undefined;
}

const ANALYZE = which('systemd-analyze');
const SYSUSERS_BIN = which('systemd-sysusers');
const missing = !ANALYZE && !process.env.CI;
const why = missing ? ' (skipped: systemd-analyze is not installed; Debian: apt-get install systemd)' : '';

const scratch = mkdtempSync(join(tmpdir(), 'port-systemd-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** The unit's settings, `Key` → every value it is given, in order (comments and sections dropped). */
function settings(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (!line || line.startsWith('#') || line.startsWith(';') || line.startsWith('[')) continue;
    const eq = line.indexOf('=');
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

const EXEC = '/opt/port/bin/port';

/**
 * A copy of the unit whose ExecStart runs a stand-in at a path that exists here: verify
 * checks that the command is an executable file, and Port is not installed at /opt/port on
 * a build machine. Nothing else changes.
 */
function unitWithStandIn(name: string, text = unitText): string {
  expect(text, `the unit's ExecStart no longer runs ${EXEC}; update this test`).toContain(`ExecStart=${EXEC} `);
  const standIn = join(scratch, 'port');
  writeFileSync(standIn, '#!/bin/sh\nexit 0\n');
  chmodSync(standIn, 0o755);
  const file = join(scratch, name);
  writeFileSync(file, text.replace(`ExecStart=${EXEC} `, `ExecStart=${standIn} `));
  return file;
}

function analyze(args: string[]) {
  if (!ANALYZE) throw new Error('systemd-analyze is not installed (Debian: apt-get install systemd); CI must check the unit');
  const r = spawnSync(ANALYZE, args, { cwd: scratch, encoding: 'utf8', env: { ...process.env, SYSTEMD_LOG_COLOR: '0', SYSTEMD_COLORS: '0', SYSTEMD_PAGER: '' } });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

describe('deploy/systemd/port.service', () => {
  it.skipIf(missing)(`systemd-analyze verify accepts it without a single warning${why}`, () => {
    const r = analyze(['verify', unitWithStandIn('port.service')]);
    expect(r.output.trim()).toBe('');
    expect(r.status).toBe(0);
  });

  it.skipIf(missing)(`verify would report a misspelled or invalid setting (the check above can fail)${why}`, () => {
    const bad = unitText.replace('ProtectSystem=strict', 'ProtectSystem=strict\nProtectSytem=strict\nRestart=sometimes');
    const r = analyze(['verify', unitWithStandIn('port.service', bad)]);
    expect(r.output).toMatch(/Unknown key (name )?'ProtectSytem'/);
    expect(r.output).toMatch(/restart specifier.*sometimes/);
  });

  it.skipIf(missing)(`systemd-analyze security rates its sandbox "OK" (exposure 2.0 or less of 10)${why}`, () => {
    // --threshold is on the scale 0–100 (the printed level times ten); over it, exit 1.
    const r = analyze(['security', '--offline=yes', '--threshold=20', unitWithStandIn('port.service')]);
    const level = r.output.match(/Overall exposure level for port\.service: ([\d.]+) (\w+)/);
    expect(level, r.output).not.toBeNull();
    expect(Number(level![1])).toBeLessThanOrEqual(2);
    expect(r.status).toBe(0);
  });

  it('runs `port serve` on /etc/port/port.yaml as the dedicated user, never with --create-store', () => {
    const s = settings(unitText);
    expect(s.get('ExecStart')).toEqual([`${EXEC} serve -c /etc/port/port.yaml`]);
    expect(s.get('User')).toEqual(['port']);
    expect(s.get('Group')).toEqual(['port']);
    expect(s.get('StateDirectory')).toEqual(['port']);
    expect(s.get('ConfigurationDirectory')).toEqual(['port']);
    expect(s.get('EnvironmentFile')).toEqual(['-/etc/port/port.env']);
    expect(s.get('Restart')).toEqual(['on-failure']);
    expect(s.get('ExecReload')).toEqual(['/bin/kill -HUP $MAINPID']);
  });

  it('is sandboxed as documented, and leaves out MemoryDenyWriteExecute= (Node.js needs W+X memory)', () => {
    const s = settings(unitText);
    const expected: Record<string, string> = {
      ProtectSystem: 'strict',
      ProtectHome: 'yes',
      NoNewPrivileges: 'yes',
      PrivateTmp: 'yes',
      PrivateDevices: 'yes',
      CapabilityBoundingSet: '',
      RestrictAddressFamilies: 'AF_INET AF_INET6 AF_UNIX',
      LockPersonality: 'yes',
      RestrictNamespaces: 'yes',
    };
    for (const [key, value] of Object.entries(expected)) expect(s.get(key), key).toEqual([value]);
    expect(s.get('SystemCallFilter')).toContain('@system-service');
    expect(s.has('MemoryDenyWriteExecute')).toBe(false);
    expect(Number(s.get('LimitNOFILE')?.[0])).toBeGreaterThanOrEqual(4096);
  });

  it("gives Port longer to stop than its 10 s drain", () => {
    const [value] = settings(unitText).get('TimeoutStopSec') ?? [];
    const m = value?.match(/^(\d+)(s|min)?$/);
    expect(m, `TimeoutStopSec=${value}`).not.toBeNull();
    const seconds = Number(m![1]) * (m![2] === 'min' ? 60 : 1);
    expect(seconds).toBeGreaterThanOrEqual(15);
  });
});

describe('deploy/systemd/port.sysusers.conf', () => {
  it.skipIf(!SYSUSERS_BIN && !process.env.CI)(`creates the system user and group port${SYSUSERS_BIN ? '' : ' (skipped: systemd-sysusers is not installed)'}`, () => {
    const root = join(scratch, 'root');
    const r = spawnSync(SYSUSERS_BIN ?? 'systemd-sysusers', ['--dry-run', `--root=${root}`, SYSUSERS], { encoding: 'utf8' });
    expect(r.error).toBeUndefined();
    const output = `${r.stdout}${r.stderr}`;
    expect(output).toMatch(/Creating group '?port'? with GID \d+/);
    expect(output).toMatch(/Creating user '?port'? \(Port, access broker for Buildkite CI\) with UID \d+ and GID \d+/);
    expect(r.status).toBe(0);
  });
});

describe('why the unit leaves out MemoryDenyWriteExecute=', () => {
  const python = which('python3');
  // PR_SET_MDWE = 65, PR_MDWE_REFUSE_EXEC_GAIN = 1 (Linux 6.3+, include/uapi/linux/prctl.h):
  // the process may no longer make writable memory executable, then runs node.
  const underMdwe = [
    'import ctypes, os, sys',
    'libc = ctypes.CDLL(None, use_errno=True)',
    'if libc.prctl(65, 1, 0, 0, 0) != 0: sys.exit(77)',
    'os.execv(sys.argv[1], sys.argv[1:])',
  ].join('\n');
  const program = 'let s = 0; for (let i = 0; i < 1e6; i++) s += i; console.log("ran", s)';

  it('Node.js aborts when it may not make memory executable, as V8 must for the code it compiles', (ctx) => {
    if (!python || !existsSync(process.execPath)) return ctx.skip();
    const control = spawnSync(python, ['-c', underMdwe.replace('if libc.prctl', 'if False and libc.prctl'), process.execPath, '-e', program], { encoding: 'utf8' });
    expect(control.stdout).toContain('ran');
    const r = spawnSync(python, ['-c', underMdwe, process.execPath, '-e', program], { encoding: 'utf8' });
    if (r.status === 77) {
      console.warn('skipped: this kernel has no PR_SET_MDWE (Linux 6.3+)');
      return ctx.skip();
    }
    expect(r.stdout).not.toContain('ran');
    expect(r.status === 0).toBe(false);
    expect(r.stderr).toMatch(/SetPermissions|Check failed/);
  });
});
