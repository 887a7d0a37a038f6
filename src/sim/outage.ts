/**
 * Fault injection for the simulated REST API: an outage that answers every `/v2/…` call
 * with a 5xx (`unavailable`), or holds every call unanswered (`hang`) until it ends — after
 * `seconds`, or when cleared. Buildkite's API can be down or slow while a build blocks;
 * Port must neither lose the work nor stall on it.
 */
import { isRecord } from './http.js';
import { SimApiError } from './errors.js';

export type OutageMode = 'unavailable' | 'hang';

export interface OutageInit {
  mode: OutageMode;
  /** For `unavailable`: the status answered (5xx, default 503). */
  status?: number;
  /** How long it lasts; until cleared when absent. */
  seconds?: number;
}

export interface OutageState {
  mode: OutageMode | 'none';
  status: number | null;
  /** When it ends by itself (ISO 8601), or null. */
  until: string | null;
}

interface Active {
  mode: OutageMode;
  status: number;
  until: number | null;
  ended: Promise<void>;
  end: () => void;
  timer: NodeJS.Timeout | undefined;
}

export class RestOutage {
  private active: Active | null = null;

  /** Starts an outage (replacing one in force), or ends it with null. */
  set(init: OutageInit | null): OutageState {
    this.clear();
    if (init === null) return this.state();
    const status = init.status ?? 503;
    if (init.mode === 'unavailable' && !(Number.isInteger(status) && status >= 500 && status <= 599)) {
      throw new SimApiError('unprocessable', 'status must be a 5xx', 422);
    }
    if (init.seconds !== undefined && !(Number.isFinite(init.seconds) && init.seconds > 0)) {
      throw new SimApiError('unprocessable', 'seconds must be a positive number', 422);
    }
    let end!: () => void;
    const ended = new Promise<void>((resolve) => (end = resolve));
    const active: Active = { mode: init.mode, status, until: init.seconds === undefined ? null : Date.now() + init.seconds * 1000, ended, end, timer: undefined };
    if (init.seconds !== undefined) {
      active.timer = setTimeout(() => {
        if (this.active === active) this.clear();
      }, init.seconds * 1000);
      active.timer.unref();
    }
    this.active = active;
    return this.state();
  }

  /** Ends the outage in force: held calls go on and are answered normally. */
  clear(): void {
    const a = this.active;
    this.active = null;
    if (a === null) return;
    clearTimeout(a.timer);
    a.end();
  }

  state(): OutageState {
    const a = this.active;
    if (a === null) return { mode: 'none', status: null, until: null };
    return { mode: a.mode, status: a.mode === 'unavailable' ? a.status : null, until: a.until === null ? null : new Date(a.until).toISOString() };
  }

  /**
   * What a call meets now: a status to answer with, or nothing (go on) — for `hang`, only
   * after the outage ends or the caller gives up (`gone` resolves).
   */
  async meet(gone: Promise<void>): Promise<number | undefined> {
    const a = this.active;
    if (a === null) return undefined;
    if (a.mode === 'unavailable') return a.status;
    await Promise.race([a.ended, gone]);
    return undefined;
  }
}

/** The admin body `{mode: "unavailable" | "hang" | "none", status?, seconds?}`. */
export function parseOutageBody(body: unknown): OutageInit | null {
  if (!isRecord(body)) throw new SimApiError('bad_request', 'Request body must be a JSON object', 400);
  const { mode, status, seconds } = body;
  if (mode === 'none') return null;
  if (mode !== 'unavailable' && mode !== 'hang') throw new SimApiError('unprocessable', 'mode must be "unavailable", "hang" or "none"', 422);
  if (status !== undefined && typeof status !== 'number') throw new SimApiError('unprocessable', 'status must be a number', 422);
  if (seconds !== undefined && typeof seconds !== 'number') throw new SimApiError('unprocessable', 'seconds must be a number', 422);
  return { mode, ...(status !== undefined ? { status } : {}), ...(seconds !== undefined ? { seconds } : {}) };
}
