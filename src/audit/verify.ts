import type { JWK } from 'jose';
import type { Store } from '../store/store.js';
import { anchorProblems } from './checkpoint-anchor.js';
import { checkCheckpointChain } from './checkpoint-chain.js';
import { checkCheckpointSignature } from './checkpoint-jws.js';
import { checkpointSlackSeconds, maxAgeProblem, timingProblems } from './checkpoint-timing.js';
import type { Checkpoint, DecisionEntry } from '../store/records/decisions.js';
import { entryHash, GENESIS_HASH } from '../store/hash-chain.js';
import type { AuditProblem } from './verify-problems.js';

export type { AuditProblem, AuditProblemKind } from './verify-problems.js';

export interface AuditVerifyReport {
  ok: boolean;
  /** Entries read. */
  entries: number;
  /** Checkpoints stored, and how many of them verified and match the chain. */
  checkpoints: number;
  validCheckpoints: number;
  /** Highest seq read (0 for an empty log). */
  lastSeq: number;
  /** Highest seq covered by a valid checkpoint (0 when none). */
  lastCheckpointSeq: number;
  /** The newest valid checkpoint's number and signing time. */
  lastCheckpointNum?: number;
  lastCheckpointTime?: string;
  /** Checkpoints written before checkpoints were chained (they may only come first). */
  legacyCheckpoints: number;
  /** The timing rules applied: `audit.checkpoint_interval` and its slack, seconds (absent when the interval is 0). */
  checkpointInterval?: { seconds: number; slackSeconds: number };
  /** `--anchor`: how many anchored checkpoints were checked. */
  anchored?: number;
  /**
   * Entries after the last valid checkpoint. They are only hash-chained, not signed:
   * deleting them, or rewriting them and re-hashing, cannot be detected.
   */
  unsignedEntries: number;
  /**
   * Decisions committed but not sealed into the chain yet (PostgreSQL: in the outbox until
   * the leader seals them, normally within a fraction of a second). Not verified: not in
   * the chain yet.
   */
  unsealed: number;
  /** False when verification had to stop early (an unreadable entry). */
  complete: boolean;
  /** The first problem by seq — the place to start looking. */
  firstBad?: AuditProblem;
  /** Problems in seq order, at most `maxProblems`. */
  problems: AuditProblem[];
  problemCount: number;
  /**
   * Things that do not fail verification but deserve a look: stretches of the chain
   * with far fewer checkpoints than `checkpointEvery` implies (deleted checkpoints, or
   * a checkpointer that keeps failing).
   */
  warnings: string[];
}

export interface VerifyOptions {
  /** Entries per read; default 1000. */
  pageSize?: number;
  /** Problems kept in the report; default 100 (all are counted). */
  maxProblems?: number;
  /** The configured `audit.checkpoint_every`, to warn about missing checkpoints. */
  checkpointEvery?: number;
  /**
   * The configured `audit.checkpoint_interval`, seconds: entries must be covered by a
   * checkpoint within it plus slack (checkpoint-timing.ts). 0 or absent: not checked.
   */
  checkpointInterval?: number;
  /** `--max-age`, seconds: the newest valid checkpoint must be at most this old. */
  maxAgeSeconds?: number;
  /** `--anchor`: checkpoints kept outside that must all still be in the log. */
  anchor?: readonly Checkpoint[];
  /** Clock for `maxAgeSeconds` (ms since the epoch). */
  now?: () => number;
}

/** An entry whose hash check failed, kept to recognise a swap when its partner turns up. */
interface Suspect {
  entry: DecisionEntry;
  problem: AuditProblem;
}

/** How many failed entries we remember for swap detection; a bound on memory and work. */
const MAX_SUSPECTS = 64;

/**
 * Verifies the decision log offline: every entry against its hash and its
 * predecessor; every checkpoint's signature, that the chain still ends in the hash it
 * signed, and that the checkpoints still link into one chain; that checkpoints were
 * written on time (`checkpointInterval`), recently enough (`maxAgeSeconds`), and that
 * every anchored checkpoint is still there (`anchor`). Reads the log in pages, so
 * memory stays flat; keeps only the hashes at checkpointed seqs.
 */
export async function verifyAuditLog(store: Store, publicKeys: Map<string, JWK>, opts: VerifyOptions = {}): Promise<AuditVerifyReport> {
  const pageSize = opts.pageSize ?? 1000;
  const maxProblems = opts.maxProblems ?? 100;
  // Checkpoints first: each was written after the entry it covers was committed, so
  // every one of them refers to an entry the scan below will reach.
  const checkpoints = await store.decisions.listCheckpoints();
  const checkpointed = new Set(checkpoints.map((c) => c.seq));

  const chain = new ChainWalker(checkpointed, maxProblems);
  let afterSeq = 0;
  let complete = true;
  for (;;) {
    let page: DecisionEntry[];
    try {
      page = await store.decisions.read(afterSeq, pageSize);
    } catch (err) {
      if (!(err instanceof SyntaxError)) throw err;
      // A record that is not JSON fails its whole page; step one entry at a time to reach it.
      try {
        page = await store.decisions.read(afterSeq, 1);
      } catch (inner) {
        if (!(inner instanceof SyntaxError)) throw inner;
        chain.add({ seq: afterSeq + 1, problem: 'unreadable', message: `entry ${afterSeq + 1}: unreadable (the entry after ${afterSeq} is not valid JSON; verification stopped here)` });
        complete = false;
        break;
      }
    }
    if (page.length === 0) break;
    for (const e of page) chain.visit(e);
    const last = page.at(-1)!.seq;
    if (last <= afterSeq) {
      chain.add({ seq: last, problem: 'reordered', message: `entry ${last}: reordered (the store returned entries out of order)` });
      complete = false;
      break;
    }
    afterSeq = last;
  }

  const checkpointProblems: AuditProblem[] = [];
  const validSeqs: number[] = [];
  let lastCheckpointSeq = 0;
  let lastValid: Checkpoint | undefined;
  for (const c of checkpoints) {
    const problem = await checkCheckpoint(c, publicKeys, chain, complete, lastCheckpointSeq);
    if (problem) {
      checkpointProblems.push(problem);
    } else {
      validSeqs.push(c.seq);
      lastCheckpointSeq = Math.max(lastCheckpointSeq, c.seq);
      lastValid = c;
    }
  }
  checkpointProblems.push(...checkCheckpointChain(checkpoints));

  const interval = opts.checkpointInterval ?? 0;
  const slackSeconds = checkpointSlackSeconds(interval);
  if (interval > 0 && complete && chain.newest) {
    const [firstUnsigned] = lastCheckpointSeq < chain.lastSeq ? await store.decisions.read(lastCheckpointSeq, 1) : [];
    checkpointProblems.push(
      ...timingProblems({
        intervalSeconds: interval,
        slackSeconds,
        newest: chain.newest,
        ...(firstUnsigned ? { firstUnsigned: { seq: firstUnsigned.seq, time: firstUnsigned.record.time } } : {}),
        ...(lastValid ? { lastCheckpoint: lastValid } : {}),
      }),
    );
  }
  if (opts.maxAgeSeconds !== undefined) {
    const stale = maxAgeProblem(lastValid, opts.maxAgeSeconds, (opts.now ?? Date.now)(), chain.lastSeq);
    if (stale) checkpointProblems.push(stale);
  }
  if (opts.anchor) checkpointProblems.push(...(await anchorProblems(opts.anchor, checkpoints, publicKeys)));

  // Stable sort: at the same seq, the more specific chain problem comes first.
  const problems = [...chain.problems, ...checkpointProblems].sort((a, b) => a.seq - b.seq);
  const problemCount = chain.problemCount + checkpointProblems.length;
  return {
    ok: problemCount === 0,
    entries: chain.entries,
    checkpoints: checkpoints.length,
    validCheckpoints: validSeqs.length,
    lastSeq: chain.lastSeq,
    lastCheckpointSeq,
    ...(lastValid ? { lastCheckpointNum: lastValid.num, lastCheckpointTime: lastValid.time } : {}),
    legacyCheckpoints: checkpoints.filter((c) => c.prev === undefined).length,
    ...(interval > 0 ? { checkpointInterval: { seconds: interval, slackSeconds } } : {}),
    ...(opts.anchor ? { anchored: opts.anchor.length } : {}),
    unsignedEntries: Math.max(0, chain.lastSeq - lastCheckpointSeq),
    unsealed: await store.decisions.unsealed(),
    complete,
    firstBad: problems[0],
    problems: problems.slice(0, maxProblems),
    problemCount,
    warnings: opts.checkpointEvery === undefined ? [] : sparseCheckpoints(validSeqs, chain.lastSeq, opts.checkpointEvery),
  };
}

/**
 * Port signs at least every `every` entries (a few more under load), so a much longer
 * stretch without a valid checkpoint suggests deleted checkpoints — the one way to
 * rewrite the chain that checkpoints cannot catch — or a checkpointer that keeps failing.
 */
function sparseCheckpoints(validSeqs: number[], lastSeq: number, every: number): string[] {
  const limit = 2 * every;
  const warnings: string[] = [];
  let prev = 0;
  for (const seq of [...validSeqs, lastSeq]) {
    if (seq - prev > limit) {
      const tail = seq === lastSeq && seq !== validSeqs.at(-1);
      warnings.push(
        `entries ${prev + 1}–${seq} (${seq - prev}) ${tail ? 'follow the last checkpoint' : 'have no checkpoint between them'}, ` +
          `though one is written every ${every}: checkpoints may have been deleted, or checkpointing is failing`,
      );
    }
    prev = Math.max(prev, seq);
  }
  return warnings;
}

async function checkCheckpoint(
  c: Checkpoint,
  publicKeys: Map<string, JWK>,
  chain: ChainWalker,
  complete: boolean,
  lastGood: number,
): Promise<AuditProblem | undefined> {
  const sig = await checkCheckpointSignature(c, publicKeys);
  if (!sig.ok) {
    const label = sig.problem === 'unknown_key' ? 'unknown key' : sig.problem === 'bad_signature' ? 'bad signature' : 'checkpoint mismatch';
    return { seq: c.seq, checkpoint: c.num, problem: sig.problem, message: `entry ${c.seq}: ${label} (the checkpoint at this entry ${sig.reason})` };
  }
  if (!complete && c.seq > chain.lastSeq) return undefined; // not reached; already reported why
  // A heartbeat on an empty log signs the chain's starting point.
  const stored = c.seq === 0 ? GENESIS_HASH : chain.hashAt.get(c.seq);
  if (stored === undefined) {
    if (c.seq > chain.lastSeq) {
      const first = chain.lastSeq + 1;
      return {
        seq: first,
        problem: 'truncated',
        message: `entry ${first}: removed (a signed checkpoint covers entries up to ${c.seq}, but the log ends at ${chain.lastSeq})`,
      };
    }
    return { seq: c.seq, problem: 'removed', message: `entry ${c.seq}: removed (a signed checkpoint covers it, but it is missing)` };
  }
  if (stored !== c.hash) {
    return {
      seq: c.seq,
      problem: 'checkpoint_mismatch',
      message: `entry ${c.seq}: checkpoint mismatch (the chain no longer ends in the hash signed at this entry: entries ${lastGood + 1}–${c.seq} were rewritten and re-hashed)`,
    };
  }
  return undefined;
}

/** Walks entries in seq order, checking each against its hash and its predecessor. */
class ChainWalker {
  entries = 0;
  lastSeq = 0;
  /** The newest entry read (its time feeds the checkpoint timing rules). */
  newest: { seq: number; time: string } | undefined;
  problems: AuditProblem[] = [];
  problemCount = 0;
  /** Stored hashes at checkpointed seqs. */
  readonly hashAt = new Map<number, string>();
  private prev: { seq: number; hash: string; selfOk: boolean; flagged: boolean } | undefined;
  private readonly suspects: Suspect[] = [];

  constructor(
    private readonly checkpointed: Set<number>,
    private readonly maxProblems: number,
  ) {}

  add(p: AuditProblem): AuditProblem {
    this.problemCount++;
    if (this.problems.length < this.maxProblems) this.problems.push(p);
    return p;
  }

  visit(e: DecisionEntry): void {
    this.entries++;
    const prev = this.prev;
    const expected = prev ? prev.seq + 1 : 1;
    if (e.seq < expected) {
      // Only a store that returns entries out of order gets here (SQLite orders by primary key).
      this.add({ seq: e.seq, problem: 'reordered', message: `entry ${e.seq}: reordered (it comes after entry ${expected - 1})` });
      return;
    }
    this.lastSeq = e.seq;
    this.newest = { seq: e.seq, time: e.record.time };
    if (this.checkpointed.has(e.seq)) this.hashAt.set(e.seq, e.hash);

    const selfOk = entryHash(e.seq, e.prevHash, e.record) === e.hash;
    let flagged = false;
    if (e.seq > expected) {
      const range = e.seq - 1 === expected ? `entry ${expected} is missing` : `entries ${expected}–${e.seq - 1} are missing`;
      this.add({ seq: expected, problem: 'removed', message: `entry ${expected}: removed (${range})` });
      flagged = true;
    } else if (selfOk && e.prevHash !== (prev?.hash ?? GENESIS_HASH)) {
      if (!prev) {
        this.add({ seq: e.seq, problem: 'changed', message: `entry ${e.seq}: changed (the first entry does not start from the genesis hash)` });
        flagged = true;
      } else if (prev.selfOk && !prev.flagged) {
        // The predecessor matches its own hash, but not the hash this entry chained to:
        // it was rewritten and re-hashed (or this entry's link was).
        this.add({
          seq: prev.seq,
          problem: 'changed',
          message: `entry ${prev.seq}: changed (its hash was recomputed after a change; entry ${e.seq} still links to the original)`,
        });
      }
      // Otherwise the predecessor's own problem explains the broken link.
    }
    if (!selfOk) {
      this.mismatch(e);
      flagged = true;
    }
    this.prev = { seq: e.seq, hash: e.hash, selfOk, flagged };
  }

  /** An entry whose hash does not match: changed, or one half of a swap. */
  private mismatch(e: DecisionEntry): void {
    for (const s of this.suspects) {
      const p = s.entry;
      // Its record moved here (hashes left in place), or its whole row did.
      const recordMoved = entryHash(p.seq, p.prevHash, e.record) === p.hash;
      const rowMoved = entryHash(p.seq, e.prevHash, e.record) === e.hash;
      if (recordMoved || rowMoved) {
        s.problem.problem = 'reordered';
        s.problem.message = `entry ${p.seq}: reordered (its contents are now at entry ${e.seq})`;
        this.add({ seq: e.seq, problem: 'reordered', message: `entry ${e.seq}: reordered (holds the contents of entry ${p.seq})` });
        return;
      }
    }
    const problem = this.add({ seq: e.seq, problem: 'changed', message: `entry ${e.seq}: changed (hash does not match its contents)` });
    if (this.suspects.length < MAX_SUSPECTS) this.suspects.push({ entry: e, problem });
  }
}
