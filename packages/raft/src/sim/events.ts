// The simulator's agenda: a binary min-heap of events ordered by (time, sequence). The sequence
// number breaks ties in insertion order, so two events at the same simulated millisecond always run
// in the same order — one of the things that makes a run a pure function of its seed.

export interface Scheduled<E> {
  readonly timeMs: number;
  readonly seq: number;
  readonly event: E;
}

export class EventQueue<E> {
  private readonly heap: Scheduled<E>[] = [];
  private nextSeq = 0;

  /**
   * Bound on pending events. A correct simulation holds a few thousand (messages in flight, one
   * tick and at most one persist per node); hitting the bound means a runaway feedback loop, so we
   * fail loudly instead of eating the machine's memory.
   */
  constructor(private readonly maxEvents = 1_000_000) {}

  get size(): number {
    return this.heap.length;
  }

  push(timeMs: number, event: E): void {
    if (!Number.isFinite(timeMs)) throw new RangeError(`event time must be finite, got ${timeMs}`);
    if (this.heap.length >= this.maxEvents) {
      throw new Error(`simulator event queue full (${this.maxEvents} events): runaway event loop`);
    }
    const item: Scheduled<E> = { timeMs, seq: this.nextSeq++, event };
    const heap = this.heap;
    let i = heap.length;
    heap.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Scheduled<E>;
      if (!before(item, p)) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = item;
  }

  peekTime(): number | null {
    const top = this.heap[0];
    return top === undefined ? null : top.timeMs;
  }

  pop(): Scheduled<E> | null {
    const heap = this.heap;
    const top = heap[0];
    if (top === undefined) return null;
    const last = heap.pop() as Scheduled<E>;
    if (heap.length > 0) {
      let i = 0;
      const n = heap.length;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        let c = l;
        if (r < n && before(heap[r] as Scheduled<E>, heap[l] as Scheduled<E>)) c = r;
        const child = heap[c] as Scheduled<E>;
        if (!before(child, last)) break;
        heap[i] = child;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}

function before<E>(x: Scheduled<E>, y: Scheduled<E>): boolean {
  return x.timeMs < y.timeMs || (x.timeMs === y.timeMs && x.seq < y.seq);
}
