/**
 * An async readers-writer lock for a format node: reads share it, anything that
 * changes metadata (writes, zeroing, discard, resize, flush) holds it alone.
 * Waiters are served in arrival order, so a stream of reads cannot starve a
 * writer and vice versa. `free` tells a synchronous reader (one that takes no
 * lock because it finishes before anything else runs) that no holder or waiter
 * is changing metadata.
 */
type Waiter = { exclusive: boolean; wake: () => void };

export class RwLock {
  private readers = 0;
  private writer = false;
  private readonly queue: Waiter[] = [];

  /** Nobody holds the lock alone or waits for it: the state is as the last change left it. */
  get free(): boolean {
    return !this.writer && this.queue.length === 0;
  }

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(false);
    try {
      return await fn();
    } finally {
      this.readers--;
      this.pump();
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire(true);
    try {
      return await fn();
    } finally {
      this.writer = false;
      this.pump();
    }
  }

  private acquire(exclusive: boolean): Promise<void> {
    if (this.queue.length === 0 && !this.writer && (!exclusive || this.readers === 0)) {
      this.take(exclusive);
      return Promise.resolve();
    }
    return new Promise((wake) => this.queue.push({ exclusive, wake }));
  }

  private take(exclusive: boolean): void {
    if (exclusive) this.writer = true;
    else this.readers++;
  }

  private pump(): void {
    while (this.queue.length > 0 && !this.writer) {
      const next = this.queue[0]!;
      if (next.exclusive && this.readers > 0) return;
      this.queue.shift();
      this.take(next.exclusive);
      next.wake();
    }
  }
}
