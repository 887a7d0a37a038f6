import type { Checkpoint } from '../store/records/decisions.js';

/**
 * One checkpoint as a JSON line: the format of `port audit checkpoints export`, of a
 * file checkpoint sink and of the body a URL sink receives — so whatever an auditor
 * kept from any of them can be handed back to `port audit verify --anchor FILE`.
 */
export function checkpointToJsonLine(c: Checkpoint): string {
  return `${JSON.stringify(checkpointToJson(c))}\n`;
}

/** The exported fields in a fixed order; `prev` only on chained checkpoints. */
export function checkpointToJson(c: Checkpoint): Record<string, unknown> {
  return { num: c.num, seq: c.seq, hash: c.hash, time: c.time, kid: c.kid, ...(c.prev !== undefined ? { prev: c.prev } : {}), jws: c.jws };
}

/** Parses one exported line; a string says what is wrong with it (one clause, no contents). */
export function parseCheckpointLine(text: string): Checkpoint | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return 'not valid JSON';
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) return 'not a JSON object';
  const o = doc as Record<string, unknown>;
  for (const key of ['num', 'seq'] as const) {
    if (!Number.isSafeInteger(o[key]) || (o[key] as number) < 0) return `"${key}" is not a whole number`;
  }
  for (const key of ['hash', 'time', 'kid', 'jws'] as const) {
    if (typeof o[key] !== 'string' || o[key] === '') return `"${key}" is not a non-empty string`;
  }
  if (o.prev !== undefined && typeof o.prev !== 'string') return '"prev" is not a string';
  const c: Checkpoint = { num: o.num as number, seq: o.seq as number, hash: o.hash as string, time: o.time as string, kid: o.kid as string, jws: o.jws as string };
  return typeof o.prev === 'string' ? { ...c, prev: o.prev } : c;
}
