import { PassThrough } from 'node:stream';
import { Command } from 'commander';
import { registerAuditCommands } from '../../src/cli/audit-commands.js';

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `port audit …` in-process through commander, as main.ts wires it. */
export async function portAudit(...args: string[]): Promise<Run> {
  const stdout = new PassThrough();
  const chunks: Buffer[] = [];
  stdout.on('data', (c: Buffer) => chunks.push(c));
  const errs: string[] = [];
  const program = new Command('port').exitOverride().configureOutput({ writeErr: (s) => errs.push(s), writeOut: (s) => chunks.push(Buffer.from(s)) });
  registerAuditCommands(program, { stdout, err: (t) => errs.push(`${t}\n`) });
  const saved = process.exitCode;
  process.exitCode = undefined;
  try {
    await program.parseAsync(['node', 'port', 'audit', ...args]);
    return { code: Number(process.exitCode ?? 0), stdout: Buffer.concat(chunks).toString('utf8'), stderr: errs.join('') };
  } catch (err) {
    // commander's exitOverride: an unknown option or command is a usage error (exit 2 in main.ts).
    return { code: 2, stdout: Buffer.concat(chunks).toString('utf8'), stderr: `${errs.join('')}${(err as Error).message}\n` };
  } finally {
    process.exitCode = saved;
  }
}
