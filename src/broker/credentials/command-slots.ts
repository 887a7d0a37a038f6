/**
 * At most `limit` holders at a time; the rest wait in line (at most `maxWaiting` of them)
 * for up to the wait they name. Bounds the processes one credential's command can fork,
 * however many jobs ask at once.
 */
export class CommandSlots {
  private running = 0;
  private readonly waiting: { grant: () => void }[] = [];

  constructor(
    private readonly limit: number,
    private readonly maxWaiting: number,
  ) {}

  /** Resolves true holding a slot (call `release` once), false when none freed within `waitMs` or the line is full. */
  acquire(waitMs: number): Promise<boolean> {
    if (this.running < this.limit) {
      this.running++;
      return Promise.resolve(true);
    }
    if (this.waiting.length >= this.maxWaiting || waitMs <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const waiter = {
        grant: () => {
          clearTimeout(timer);
          resolve(true);
        },
      };
      const timer = setTimeout(() => {
        this.waiting.splice(this.waiting.indexOf(waiter), 1);
        resolve(false);
      }, waitMs);
      this.waiting.push(waiter);
    });
  }

  /** Hands the slot to the next in line, else frees it. */
  release(): void {
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.running--;
  }
}
