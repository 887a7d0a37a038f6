import type { Change, ChangeFeed, ChangeTopic, FeedHealth } from './repositories/changes.js';

/**
 * The change feed of a store only this process writes to (SQLite): repositories publish
 * after each durable write, and the listeners run at once. Always current: there is no
 * one else to hear from.
 */
export class LocalChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<(changes: Change[]) => void>();

  /** `onError` hears a listener that threw (by default a process warning). */
  constructor(private readonly onError: (err: unknown) => void = (err) => process.emitWarning(err instanceof Error ? err : String(err))) {}

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Runs in the writer's call, after its commit: a listener that throws is reported, not
   * passed on, so the write still resolves (it is durable) and the other listeners hear it.
   */
  publish(topic: ChangeTopic, keys: readonly string[]): void {
    if (keys.length === 0) return;
    const changes = keys.map((key) => ({ topic, key }));
    for (const listener of this.listeners) {
      try {
        listener(changes);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  health(): FeedHealth {
    return { current: true };
  }
}
