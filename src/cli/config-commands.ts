/**
 * `port config check [-c port.yaml] [--reachability]` and `port config schema`.
 *
 * check: one line per finding on stderr (`warning: …` for warnings), then a summary on
 * stdout. Exit 0 when there is no problem (warnings allowed), 1 when there is one, 2 when
 * the command is misused or the file can't be read.
 */
import type { Command } from 'commander';
import { configJsonSchema } from '../config/json-schema.js';
import { checkConfig } from './config-check.js';
import { checkReachability } from './config-reachability.js';
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE } from './exit-codes.js';
import { UsageError } from './usage-error.js';

export interface ConfigCliIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: ConfigCliIO = {
  out: (text) => void process.stdout.write(`${text}\n`),
  err: (text) => void process.stderr.write(`${text}\n`),
};

export interface CheckOptions {
  config?: string;
  reachability?: boolean;
  timeout?: string;
}

export function registerConfigCommands(program: Command, io: ConfigCliIO = processIO): void {
  const config = program.command('config').description('check the configuration, or print its JSON Schema');

  config
    .command('check')
    .description('validate port.yaml and the policies together; one line per problem')
    .option('-c, --config <file>', "Port's config file", './port.yaml')
    .option('--reachability', "also try Buildkite's JWKS, the REST API (with api_token), the SSO issuer and every upstream from here")
    .option('--timeout <seconds>', 'how long each --reachability check may take', '5')
    .addHelpText(
      'after',
      `
Problems (exit 1): YAML and schema errors; policies that don't parse or don't validate
against Port's Cedar schema; policies naming a Port::Credential or Port::Upstream that
is not in the config; secret references (env:, file:) that don't resolve, each with its
key; with --reachability, targets that can't be reached.
Warnings (exit 0): credentials and upstreams no permit can reach; policies naming
another organization; the policy loader's warnings.
Exit 2: the command was misused or the config file can't be read.`,
    )
    .action(async (opts: CheckOptions) => {
      process.exitCode = await runConfigCheck(opts, io);
    });

  config
    .command('schema')
    .description("print the configuration's JSON Schema (for editors and validators)")
    .action(() => {
      process.exitCode = runConfigSchema(io);
    });
}

export async function runConfigCheck(opts: CheckOptions, io: ConfigCliIO): Promise<number> {
  const file = opts.config ?? './port.yaml';
  try {
    const timeout = Number(opts.timeout ?? '5');
    if (!/^\d+(\.\d+)?$/.test(opts.timeout ?? '5') || timeout <= 0 || timeout > 120) {
      throw new UsageError(`--timeout ${String(opts.timeout).slice(0, 20)}: write a number of seconds from 0.1 to 120, e.g. 5`);
    }
    const result = await checkConfig(file);
    let problems = 0;
    let warnings = 0;
    for (const f of result.findings) {
      if (f.level === 'problem') problems++;
      else warnings++;
      io.err(f.level === 'problem' ? f.text : `warning: ${f.text}`);
    }
    if (opts.reachability === true) {
      if (result.config === undefined) {
        io.err(`${file}: --reachability: not checked, the config does not validate`);
        problems++;
      } else {
        for (const line of await checkReachability(result.config, timeout * 1000)) {
          if (!line.ok) {
            problems++;
            io.err(line.text);
          } else if (line.warning === true) {
            warnings++;
            io.err(`warning: ${line.text}`);
          } else {
            io.out(line.text);
          }
        }
      }
    }
    const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;
    if (problems > 0) {
      io.out(`${file}: ${plural(problems, 'problem')}${warnings > 0 ? `, ${plural(warnings, 'warning')}` : ''}`);
      return EXIT_FAILED;
    }
    const c = result.config!;
    io.out(
      `${file}: OK: ${result.policies} ${result.policies === 1 ? 'policy' : 'policies'}, ` +
        `${plural(Object.keys(c.credentials).length, 'credential')}, ${plural(Object.keys(c.upstreams).length, 'upstream')}` +
        `${warnings > 0 ? `; ${plural(warnings, 'warning')}` : ''}`,
    );
    return EXIT_OK;
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`port config check: ${err.message}`);
      return EXIT_USAGE;
    }
    io.err(`port config check: ${err instanceof Error ? err.message : String(err)}`);
    return EXIT_FAILED;
  }
}

export function runConfigSchema(io: ConfigCliIO): number {
  io.out(JSON.stringify(configJsonSchema(), null, 2));
  return EXIT_OK;
}
