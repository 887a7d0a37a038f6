import type { Change, ChangeFeed, ChangeTopic, FeedHealth } from './repositories/changes.js';

/**
 * The change feed of a store only this process writes to (SQLite): repositories publish
 * after each durable write, and the listeners run at once. Always current: there is no
 * one else to hear from.
 */
export class LocalChangeFeed implements ChangeFeed {
  private readonly listeners = new Set<(changes: Change[]) => void>();

  subscribe(listener: (changes: Change[]) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  publish(topic: ChangeTopic, keys: readonly string[]): void {
    if (keys.length === 0) return;
    const changes = keys.map((key) => ({ topic, key }));
    for (const listener of this.listeners) listener(changes);
  }

  health(): FeedHealth {
    return { current: true };
  }
}
