/**
 * Write batching: a session corks its socket on the first frame of an event-loop turn and the
 * scheduler uncorks every touched socket once, in `setImmediate`, so N frames to one socket cost
 * one `writev` instead of N `write` syscalls.
 */
export interface Flushable {
  flush(): void;
}

export class FlushScheduler {
  private pending: Flushable[] = [];
  private spare: Flushable[] = [];
  private scheduled = false;

  add(target: Flushable): void {
    this.pending.push(target);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.run);
    }
  }

  private readonly run = (): void => {
    this.scheduled = false;
    // Swap buffers instead of allocating: flushes may schedule new work for the next turn.
    const list = this.pending;
    this.pending = this.spare;
    for (let i = 0; i < list.length; i++) (list[i] as Flushable).flush();
    list.length = 0;
    this.spare = list;
  };
}
