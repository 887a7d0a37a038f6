/**
 * What the `buildkite-agent` stand-in touches in the outside world, injectable so
 * tests can run it in-process, plus its log line format.
 */
import { readFile } from 'node:fs/promises';

export interface AgentIo {
  env: Readonly<Record<string, string | undefined>>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
  readStdin: () => Promise<string>;
  readFile: (path: string) => Promise<string>;
  fetch: typeof fetch;
  sleep: (ms: number) => Promise<void>;
}

/** The process's real IO. */
export function processIo(): AgentIo {
  return {
    env: process.env,
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    readStdin: async () => {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
      return Buffer.concat(chunks).toString('utf8');
    },
    readFile: (path) => readFile(path, 'utf8'),
    fetch: globalThis.fetch,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
  };
}

function timestamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** The agent's plain-text log lines on stderr: `2006-01-02 15:04:05 LEVEL  message`. */
export interface AgentLogger {
  info: (msg: string) => void;
  warn: (msg: string) => void;
  error: (msg: string) => void;
}

export function agentLogger(io: AgentIo): AgentLogger {
  const line = (level: string) => (msg: string) => io.stderr(`${timestamp(new Date())} ${level.padEnd(6)} ${msg}\n`);
  return { info: line('INFO'), warn: line('WARN'), error: line('ERROR') };
}
