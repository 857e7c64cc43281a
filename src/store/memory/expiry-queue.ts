/**
 * A min-heap of expiry deadlines: O(log n) to schedule and to pop, so expiry
 * never scans the sessions. Entries are checked when they come due (the
 * owner decides whether one is stale), and the heap is rebuilt when stale
 * entries would outnumber live ones, so it stays bounded.
 */
export interface Deadline<T> {
  at: number;
  item: T;
}

export class ExpiryQueue<T> {
  private heap: Deadline<T>[] = [];
  private stale = 0;

  constructor(private readonly isLive: (d: Deadline<T>) => boolean) {}

  get size(): number {
    return this.heap.length;
  }

  /** The earliest deadline, if any. */
  peek(): Deadline<T> | undefined {
    return this.heap[0];
  }

  push(at: number, item: T): void {
    const heap = this.heap;
    heap.push({ at, item });
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]!.at <= heap[i]!.at) break;
      [heap[parent], heap[i]] = [heap[i]!, heap[parent]!];
      i = parent;
    }
  }

  pop(): Deadline<T> | undefined {
    const heap = this.heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < heap.length && heap[l]!.at < heap[min]!.at) min = l;
      if (r < heap.length && heap[r]!.at < heap[min]!.at) min = r;
      if (min === i) break;
      [heap[min], heap[i]] = [heap[i]!, heap[min]!];
      i = min;
    }
    return top;
  }

  /** Notes that an entry went stale; rebuilds once stale entries make up half the heap. */
  markStale(count = 1): void {
    this.stale += count;
    if (this.stale >= 1024 && this.stale * 2 >= this.heap.length) {
      const live = this.heap.filter(this.isLive);
      this.heap = [];
      this.stale = 0;
      for (const d of live) this.push(d.at, d.item);
    }
  }

  /** Notes that a stale entry was popped (and skipped) by the owner. */
  stalePopped(): void {
    if (this.stale > 0) this.stale--;
  }

  clear(): void {
    this.heap = [];
    this.stale = 0;
  }
}
