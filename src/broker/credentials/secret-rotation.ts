import { randomUUID } from 'node:crypto';
import { entityString } from '../../audit/decision-from-policy.js';
import type { DecisionLog } from '../../audit/decision-log.js';
import type { SecretCredentialConfig } from '../../config/config.js';
import { credentialRef } from '../../policy/entities.js';
import type { SecretVersionRecord, Store } from '../../store/store.js';
import { CredentialError } from './errors.js';
import { requestRetirement, requestRotation, type RotatedValue } from './rotation-hook.js';
import { openSecretValue, sealSecretValue } from './secret-seal.js';
import { SecretValues } from './secret-value.js';

/** What started a rotation. */
export type RotationTrigger = 'schedule' | 'admin';

/** A version's state as the admin API reports it (never its value). */
export interface SecretVersionStatus {
  version: number;
  /** current: what jobs get; accepted: replaced, still valid until retires_at; retiring: past it, retire hook not yet confirmed; retired. */
  state: 'current' | 'accepted' | 'retiring' | 'retired';
  created_at: string;
  retires_at?: string;
  retired_at?: string;
}

export interface RotationResult {
  name: string;
  version: number;
  previous_version: number;
  /** When the previous version stops being accepted (its retire hook is called then). */
  previous_retires_at: string;
  versions: SecretVersionStatus[];
}

/** The value jobs get now. */
export interface CurrentSecret {
  value: string;
  version: number;
  /** When this value will be retired at the latest under the schedule (ms), if it is rotated on one. */
  retiresAt?: number;
}

export interface SecretRotationDeps {
  store: Store;
  log: DecisionLog;
  credentials: SecretCredentialConfig[];
  /** Seals rotated values at rest (issuer.key_encryption_key, derived). */
  keyEncryptionKey?: Buffer;
  onError(err: unknown, message: string): void;
  /** Wait before calling a failed retire hook again (ms). */
  retireRetryAfter?: number;
  /** The configured (version 0 / unrotated) values; one per Port so command caps and caches are shared. */
  values?: SecretValues;
  /**
   * Whether this process runs the schedule now (src/cluster/leadership.ts: only the leader
   * of several Port processes does); rotations asked for through the API run anywhere.
   */
  scheduling?: () => boolean;
}

const MAX_SLEEP_MS = 60_000;
/** How soon a process that doesn't run the schedule looks again (it may have become the leader). */
const NOT_LEADING_RECHECK_MS = 5_000;

/**
 * Secret versions and their rotation. Version 0 is the configured
 * value; each rotation asks the hook for a new value, stores it sealed as the next
 * version, and keeps the previous one *accepted* for `overlap`: the backing system must
 * keep accepting it until Port calls the hook with `{"action":"retire"}` — jobs that
 * fetched it just before the rotation keep working until then. One rotation at a time
 * per credential: concurrent callers share the running one, and the store's
 * compare-and-set refuses a second writer (another process on the same store); the
 * loser asks the hook to `discard` the value it got, so no live value is left that Port
 * would never retire. The schedule counts from the newest stored version's creation, so
 * it holds across restarts.
 */
export class SecretRotation {
  private readonly byName: Map<string, SecretCredentialConfig>;
  private readonly running = new Map<string, Promise<RotationResult>>();
  /** `name:version` → earliest time to call a failed retire hook again (ms). */
  private readonly retireRetryAt = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;
  private wakeAt = 0;
  private stopped = true;
  private ticking: Promise<void> | undefined;
  private readonly values: SecretValues;

  constructor(private readonly deps: SecretRotationDeps) {
    this.byName = new Map(deps.credentials.map((c) => [c.name, c]));
    this.values = deps.values ?? new SecretValues();
  }

  private get rotating(): SecretCredentialConfig[] {
    return [...this.byName.values()].filter((c) => c.rotation !== undefined);
  }

  /** Records version 0 of every rotating secret (first start) and starts the schedule. */
  async start(now = Date.now()): Promise<void> {
    for (const c of this.rotating) await this.deps.store.secretVersions.init({ credential: c.name, version: 0, sealedValue: null, createdAt: now });
    this.stopped = false;
    this.wake(0);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.ticking;
    await Promise.allSettled(this.running.values());
  }

  /** The value a job gets now and its version. */
  async current(cred: SecretCredentialConfig): Promise<CurrentSecret> {
    if (cred.rotation === undefined) return { value: await this.values.resolve(cred), version: 0 };
    const versions = await this.deps.store.secretVersions.list(cred.name);
    const current = versions.at(-1);
    if (current === undefined || current.sealedValue === null) {
      return { value: await this.values.resolve(cred), version: current?.version ?? 0, ...this.scheduledRetirement(cred, current) };
    }
    return { value: openSecretValue(current.sealedValue, cred.name, current.version, this.deps.keyEncryptionKey).value, version: current.version, ...this.scheduledRetirement(cred, current) };
  }

  private scheduledRetirement(cred: SecretCredentialConfig, current: SecretVersionRecord | undefined): { retiresAt?: number } {
    const r = cred.rotation;
    if (r?.every === undefined || current === undefined) return {};
    return { retiresAt: current.createdAt + (r.every + r.overlap) * 1000 };
  }

  /** The versions of a rotating secret and their states. */
  async status(name: string, now = Date.now()): Promise<SecretVersionStatus[]> {
    const versions = await this.deps.store.secretVersions.list(name);
    return versions.map((v, i) => versionStatus(v, i === versions.length - 1, now));
  }

  /** Rotates now; a rotation already running for the credential is joined, not repeated. */
  rotate(name: string, trigger: RotationTrigger): Promise<RotationResult> {
    const cred = this.byName.get(name);
    if (cred?.rotation === undefined) {
      return Promise.reject(new CredentialError('invalid_request', `The credential "${name}" is not a secret with a rotation hook; add credentials.${name}.rotation to rotate it.`));
    }
    const running = this.running.get(name);
    if (running) return running;
    const p = this.doRotate(cred, trigger).finally(() => this.running.delete(name));
    this.running.set(name, p);
    return p;
  }

  private async doRotate(cred: SecretCredentialConfig, trigger: RotationTrigger): Promise<RotationResult> {
    const rotation = cred.rotation!;
    const versions = await this.deps.store.secretVersions.list(cred.name);
    const previous = versions.at(-1)?.version ?? 0;
    const version = previous + 1;
    const base = { event: 'rotate', trigger, version, previous_version: previous, hook: rotation.hook.kind };
    let rotated: RotatedValue;
    try {
      rotated = await requestRotation(rotation.hook, { action: 'rotate', credential: cred.name, version, previous_version: previous }, rotation.timeout);
    } catch (err) {
      const reason = `Rotation of "${cred.name}" failed: ${(err as Error).message}; the current value stays.`;
      await this.audit(cred.name, 'deny', reason, base);
      throw new CredentialError('credential_unavailable', reason, { cause: err });
    }
    const handles = { rotation_id: rotated.rotationId, ...(rotated.valueId !== undefined ? { value_id: rotated.valueId } : {}) };
    const now = Date.now();
    const retiresAt = now + rotation.overlap * 1000;
    let stored: boolean | 'unknown';
    let writeFailed = false;
    try {
      stored = await this.deps.store.secretVersions.add(
        { credential: cred.name, version, sealedValue: sealSecretValue(rotated, cred.name, version, this.deps.keyEncryptionKey), createdAt: now },
        retiresAt,
      );
    } catch (err) {
      // The write failed, or only its answer did: look before discarding a value jobs may get.
      writeFailed = true;
      this.deps.onError(err, `storing version ${version} of "${cred.name}" failed`);
      stored = await this.holds(cred, version, rotated.rotationId).catch(() => 'unknown' as const);
    }
    if (stored === 'unknown') {
      const reason = `Rotation of "${cred.name}" could not tell whether version ${version} was stored; if it was not, the value of rotation ${rotated.rotationId} is live and unused: discard it by hand.`;
      this.deps.onError(new Error(reason), reason);
      await this.audit(cred.name, 'deny', reason, { ...base, ...handles });
      throw new CredentialError('credential_unavailable', reason);
    }
    if (!stored) {
      const reason = writeFailed
        ? `Rotation of "${cred.name}" could not store its new value; the current value stays.`
        : `Rotation of "${cred.name}" lost to a concurrent rotation; its new value was not stored.`;
      try {
        await this.audit(cred.name, 'deny', reason, { ...base, ...handles });
      } finally {
        // Even when the audit write fails (the store is what just failed, perhaps).
        await this.discard(cred, version, rotated, trigger);
      }
      throw new CredentialError('credential_unavailable', `${reason} Retry to rotate again.`);
    }
    const retires_at = new Date(retiresAt).toISOString();
    await this.audit(cred.name, 'allow', `Rotated "${cred.name}" to version ${version}; version ${previous} is accepted until ${retires_at}.`, { ...base, ...handles, retires_at });
    this.wake(Math.max(0, retiresAt - Date.now()));
    return { name: cred.name, version, previous_version: previous, previous_retires_at: retires_at, versions: await this.status(cred.name) };
  }

  /** Whether the store's `version` is the value of rotation `rotationId` (ours), not another process's. */
  private async holds(cred: SecretCredentialConfig, version: number, rotationId: string): Promise<boolean> {
    const v = (await this.deps.store.secretVersions.list(cred.name)).find((x) => x.version === version);
    if (v === undefined || v.sealedValue === null) return false;
    return openSecretValue(v.sealedValue, cred.name, version, this.deps.keyEncryptionKey).rotationId === rotationId;
  }

  /**
   * Asks the hook to delete a value Port got but did not store: nothing would
   * ever retire it otherwise. One attempt: Port can't keep the value to retry with; a
   * failure is logged and audited with the rotation id, so an operator can delete it.
   */
  private async discard(cred: SecretCredentialConfig, version: number, rotated: RotatedValue, trigger: RotationTrigger): Promise<void> {
    const handles = { rotation_id: rotated.rotationId, ...(rotated.valueId !== undefined ? { value_id: rotated.valueId } : {}) };
    // `attempted_version`: the number this rotation tried to store, now another rotation's
    // live value; the hook is never told it (see rotation-hook.ts).
    const base = { event: 'discard', trigger, attempted_version: version, ...handles };
    try {
      await requestRetirement(cred.rotation!.hook, { action: 'discard', credential: cred.name, ...handles }, cred.rotation!.timeout);
    } catch (err) {
      const reason = `Discarding the unstored value of rotation ${rotated.rotationId} of "${cred.name}" failed: ${(err as Error).message}; it may still be live: delete it by hand.`;
      this.deps.onError(err, reason);
      await this.audit(cred.name, 'deny', reason, base);
      return;
    }
    await this.audit(cred.name, 'allow', `Discarded the unstored value of rotation ${rotated.rotationId} of "${cred.name}".`, base);
  }

  private async retire(cred: SecretCredentialConfig, v: SecretVersionRecord, now: number): Promise<void> {
    const key = `${cred.name}:${v.version}`;
    if ((this.retireRetryAt.get(key) ?? 0) > now) return;
    const base = { event: 'retire', trigger: 'schedule', version: v.version, retires_at: new Date(v.retiresAt!).toISOString() };
    try {
      await requestRetirement(cred.rotation!.hook, { action: 'retire', credential: cred.name, version: v.version, ...this.retireHandles(cred, v) }, cred.rotation!.timeout);
    } catch (err) {
      // Not fatal: the old value stays accepted a little longer; tried again later.
      const retryAt = Date.now() + (this.deps.retireRetryAfter ?? 30_000);
      this.retireRetryAt.set(key, retryAt);
      const reason = `Retiring version ${v.version} of "${cred.name}" failed: ${(err as Error).message}; retrying.`;
      this.deps.onError(err, reason);
      await this.audit(cred.name, 'deny', reason, { ...base, retry_at: new Date(retryAt).toISOString() });
      return;
    }
    this.retireRetryAt.delete(key);
    await this.deps.store.secretVersions.markRetired(cred.name, v.version, Date.now());
    await this.audit(cred.name, 'allow', `Retired version ${v.version} of "${cred.name}".`, base);
  }

  /** The rotate call's id and the hook's id of a stored version, when it opens (version 0 has none). */
  private retireHandles(cred: SecretCredentialConfig, v: SecretVersionRecord): { rotation_id?: string; value_id?: string } {
    if (v.sealedValue === null) return {};
    try {
      const s = openSecretValue(v.sealedValue, cred.name, v.version, this.deps.keyEncryptionKey);
      return { ...(s.rotationId !== undefined ? { rotation_id: s.rotationId } : {}), ...(s.valueId !== undefined ? { value_id: s.valueId } : {}) };
    } catch {
      // Sealed under another key: the version number still names it.
      return {};
    }
  }

  private async audit(name: string, decision: 'allow' | 'deny', reason: string, context: Record<string, unknown>): Promise<void> {
    await this.deps.log.record([
      {
        id: randomUUID(),
        time: new Date().toISOString(),
        // Port itself (schedule) or the admin API: no Cedar principal.
        principal: null,
        action: 'rotate',
        resource: entityString(credentialRef(name)),
        decision,
        policies: [],
        reason,
        context,
      },
    ]);
  }

  /** Runs due retirements and scheduled rotations, then sleeps until the next is due. */
  private async tick(): Promise<void> {
    if (this.deps.scheduling && !this.deps.scheduling()) return this.wake(NOT_LEADING_RECHECK_MS);
    let next = Date.now() + MAX_SLEEP_MS;
    for (const cred of this.rotating) {
      try {
        const now = Date.now();
        const versions = await this.deps.store.secretVersions.list(cred.name);
        for (const v of versions) {
          if (v.retiresAt === undefined || v.retiredAt !== undefined) continue;
          if (v.retiresAt <= now) await this.retire(cred, v, now);
          next = Math.min(next, Math.max(v.retiresAt, this.retireRetryAt.get(`${cred.name}:${v.version}`) ?? 0));
        }
        const every = cred.rotation!.every;
        const newest = versions.at(-1);
        if (every !== undefined && newest !== undefined) {
          const due = newest.createdAt + every * 1000;
          if (due <= now) {
            await this.rotate(cred.name, 'schedule').catch((err: unknown) => this.deps.onError(err, `scheduled rotation of "${cred.name}" failed`));
            next = Math.min(next, Date.now() + Math.min(every * 1000, this.deps.retireRetryAfter ?? 30_000));
          } else next = Math.min(next, due);
        }
      } catch (err) {
        this.deps.onError(err, `secret rotation check for "${cred.name}" failed`);
      }
    }
    this.wake(Math.max(0, next - Date.now()));
  }

  /** Sets the timer to `delay` from now unless it already fires sooner. */
  private wake(delay: number): void {
    if (this.stopped) return;
    const at = Date.now() + Math.min(delay, MAX_SLEEP_MS);
    if (this.timer) {
      if (this.wakeAt <= at) return;
      clearTimeout(this.timer);
    }
    this.wakeAt = at;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.ticking) return this.wake(50);
      this.ticking = this.tick().finally(() => (this.ticking = undefined));
    }, Math.min(delay, MAX_SLEEP_MS));
    this.timer.unref();
  }
}

function versionStatus(v: SecretVersionRecord, isCurrent: boolean, now: number): SecretVersionStatus {
  const state = isCurrent ? 'current' : v.retiredAt !== undefined ? 'retired' : v.retiresAt !== undefined && v.retiresAt > now ? 'accepted' : 'retiring';
  return {
    version: v.version,
    state,
    created_at: new Date(v.createdAt).toISOString(),
    ...(v.retiresAt !== undefined ? { retires_at: new Date(v.retiresAt).toISOString() } : {}),
    ...(v.retiredAt !== undefined ? { retired_at: new Date(v.retiredAt).toISOString() } : {}),
  };
}
