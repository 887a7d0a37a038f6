import { describe, expect, it } from 'vitest';
import { runPort } from '../helpers/spawn-port.js';

const SLOW = 120_000;

/** Every top-level command, as `port --help` lists them. */
const COMMANDS = ['init', 'config', 'serve', 'policy', 'audit', 'agent', 'agents', 'token', 'creds', 'rotate', 'revoke', 'demo'];

// `port <command> …` loads only that command's modules, while `port --help`, `port help
// <command>` and a mistyped command load them all: each way must show the same program.
describe('help with and without the other commands loaded', () => {
  it('port --help lists every command, in order', async () => {
    const r = await runPort(['--help']);
    expect(r.code).toBe(0);
    const listed = r.stdout
      .split('Commands:')[1]!
      .split('\n')
      .map((line) => /^ {2}(\S+)/.exec(line)?.[1])
      .filter((name): name is string => name !== undefined);
    expect(listed).toEqual([...COMMANDS, 'help']);
  }, SLOW);

  it.each(COMMANDS)('port %s --help is what port help %s shows', async (command) => {
    const [alone, all] = await Promise.all([runPort([command, '--help']), runPort(['help', command])]);
    expect(alone.code).toBe(0);
    expect(alone.stdout).toContain(`Usage: port ${command} `);
    expect(alone.stdout).toBe(all.stdout);
  }, SLOW);

  it('a subcommand is found and described when only its command is loaded', async () => {
    const r = await runPort(['policy', 'lint', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Usage: port policy lint ');
    const proxy = await runPort(['agent', 'proxy', '--help']);
    expect(proxy.code).toBe(0);
    expect(proxy.stdout).toContain('Usage: port agent proxy ');
  }, SLOW);

  it('a mistyped command is refused with a suggestion, exit 2', async () => {
    const r = await runPort(['serv']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("error: unknown command 'serv'");
    expect(r.stderr).toContain('Did you mean serve?');
  }, SLOW);
});
