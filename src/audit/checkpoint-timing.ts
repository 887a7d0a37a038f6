import type { Checkpoint } from '../store/records/decisions.js';
import type { AuditProblem } from './verify-problems.js';

/**
 * Slack on `audit.checkpoint_interval` when judging whether checkpoints were written on
 * time: a tenth of the interval, at least 30 s. It absorbs timer drift, a busy store
 * (SQLite's busy_timeout is 5 s) and the time between a decision and its durable append;
 * it does not absorb a checkpointer that stopped, which is what the rules catch.
 */
export function checkpointSlackSeconds(intervalSeconds: number): number {
  return Math.max(30, Math.ceil(intervalSeconds / 10));
}

export interface TimingInput {
  /** `audit.checkpoint_interval`, seconds (> 0). */
  intervalSeconds: number;
  slackSeconds: number;
  /** The newest entry. */
  newest: { seq: number; time: string };
  /** The first entry after the last valid checkpoint (undefined when none is unsigned). */
  firstUnsigned?: { seq: number; time: string };
  /** The last valid checkpoint, if any. */
  lastCheckpoint?: Checkpoint;
}

/**
 * The promise `checkpoint_interval` makes: every entry is covered by a checkpoint within
 * the interval (plus slack) of being written — the timer signs the head each interval,
 * and a starting Port signs what an earlier run left before it serves. So, relative to
 * the newest entry (no wall clock needed):
 *
 * - entries after the last checkpoint that are older than interval + slack mean the
 *   checkpoints that covered them were removed (or checkpointing failed) — the tail cut
 *   back, or rewritten and re-hashed, with its checkpoints;
 * - a log spanning more than interval + slack without any checkpoint, likewise;
 * - entries written more than interval + slack after a chained checkpoint mean a later
 *   one is missing: chained Port also writes a heartbeat every interval when idle.
 */
export function timingProblems(t: TimingInput): AuditProblem[] {
  const allowance = t.intervalSeconds + t.slackSeconds;
  const newest = Date.parse(t.newest.time);
  if (!t.firstUnsigned || Number.isNaN(newest)) return [];
  const limit = `more than checkpoint_interval ${seconds(t.intervalSeconds)} plus ${seconds(t.slackSeconds)} slack`;
  const first = t.firstUnsigned;
  const firstTime = Date.parse(first.time);
  const range = first.seq === t.newest.seq ? `entry ${first.seq}` : `entries ${first.seq}–${t.newest.seq}`;
  if (!t.lastCheckpoint) {
    if (!Number.isNaN(firstTime) && (newest - firstTime) / 1000 > allowance) {
      return [
        {
          seq: first.seq,
          problem: 'no_checkpoint',
          message: `entry ${first.seq}: no checkpoint (${range} span ${seconds((newest - firstTime) / 1000)}, ${limit}, yet no checkpoint covers any of them: checkpoints were removed or never written)`,
        },
      ];
    }
    return [];
  }
  if (!Number.isNaN(firstTime) && (newest - firstTime) / 1000 > allowance) {
    return [
      {
        seq: first.seq,
        problem: 'unsigned_tail',
        message:
          `entry ${first.seq}: not checkpointed in time (${range} follow the last checkpoint, but entry ${first.seq} was written ` +
          `${seconds((newest - firstTime) / 1000)} before entry ${t.newest.seq}, ${limit}: the checkpoints covering them were removed, or checkpointing failed)`,
      },
    ];
  }
  const last = t.lastCheckpoint;
  const lastTime = Date.parse(last.time);
  if (last.prev !== undefined && !Number.isNaN(lastTime) && (newest - lastTime) / 1000 > allowance) {
    return [
      {
        seq: first.seq,
        problem: 'unsigned_tail',
        message:
          `entry ${first.seq}: not checkpointed in time (entry ${t.newest.seq} was written ${seconds((newest - lastTime) / 1000)} after the last checkpoint ` +
          `(${last.num}, at ${last.time}), ${limit}, though Port writes one every interval: later checkpoints were removed, or checkpointing failed)`,
      },
    ];
  }
  return [];
}

/** `--max-age`: a verifier who knows the log is live demands a recent checkpoint (heartbeats keep one recent when idle). */
export function maxAgeProblem(lastCheckpoint: Checkpoint | undefined, maxAgeSeconds: number, nowMs: number, lastSeq: number): AuditProblem | undefined {
  if (!lastCheckpoint) {
    return { seq: Math.max(1, lastSeq), problem: 'stale_checkpoint', message: `no checkpoint: the log has no valid checkpoint, but --max-age ${seconds(maxAgeSeconds)} asks for one that recent` };
  }
  const age = (nowMs - Date.parse(lastCheckpoint.time)) / 1000;
  if (Number.isNaN(age) || age <= maxAgeSeconds) return undefined;
  return {
    seq: lastCheckpoint.seq,
    checkpoint: lastCheckpoint.num,
    problem: 'stale_checkpoint',
    message:
      `checkpoint ${lastCheckpoint.num}: too old (the newest valid checkpoint was signed at ${lastCheckpoint.time}, ${seconds(age)} ago, ` +
      `more than --max-age ${seconds(maxAgeSeconds)}: the log was cut back, or Port stopped writing checkpoints)`,
  };
}

/** 42 s, 5 min, 2 h 3 min — for messages only. */
export function seconds(s: number): string {
  const whole = Math.round(s);
  if (whole < 120) return `${whole} s`;
  const m = Math.round(whole / 60);
  if (m < 120) return `${m} min`;
  return `${Math.floor(m / 60)} h${m % 60 ? ` ${m % 60} min` : ''}`;
}
