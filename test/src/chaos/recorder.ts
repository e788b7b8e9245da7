// FileHistoryRecorder: every operation of a chaos run, in the order it happened, in memory and in
// <out>/history.jsonl (the checker's format, checker/history.ts, plus `node` and `error`).
//
// Real-time order is line order: an event is appended the moment it is recorded (the invoke just
// before the request is sent, the completion just after the answer), and JavaScript runs one
// callback at a time, so if A's completion line comes before B's invoke line, A really did finish
// before B started. `time` is nanoseconds since start() (process.hrtime.bigint), for display.
//
// Bounds:
//   - the file write buffer holds at most FLUSH_BYTES (64 KiB) of lines: reaching it writes them
//     out at once (one synchronous append of a local file, so lines stay in order and memory stays
//     bounded however fast operations come); flush() writes out the rest;
//   - at most `maxEvents` events (default 2,000,000). An invoke that could not be followed by its
//     completion within the bound is refused with RecorderError 'too-many-events' (so every open
//     operation can still complete: the history never ends with invokes cut off by the bound).
// Misuse is an error, not a silent repair: completing an operation twice, or recording after close().

import { closeSync, openSync, writeSync } from 'node:fs';
import type { CallOutcome, HistoryRecorder, JsonValue, OpRecord, RecordedEvent } from './types.js';

/** The write buffer is written out when it reaches this many bytes. */
export const FLUSH_BYTES = 64 * 1024;
/** The most events a recorder holds unless told otherwise. */
export const DEFAULT_MAX_EVENTS = 2_000_000;

export type RecorderErrorCode =
  /** The bound on events is reached: the run cannot go on recording. */
  | 'too-many-events'
  /** complete() called a second time for the same invoke. */
  | 'already-completed'
  /** Recording after close(). */
  | 'closed'
  /** start() after events were recorded (two time origins in one history). */
  | 'late-start'
  /** The history file could not be written. */
  | 'write-failed';

export class RecorderError extends Error {
  override readonly name = 'RecorderError';
  constructor(
    readonly code: RecorderErrorCode,
    message: string,
  ) {
    super(message);
  }
}

export interface FileHistoryRecorderOptions {
  /** Most events held (invokes and completions); default 2,000,000. */
  readonly maxEvents?: number;
}

/** A HistoryRecorder that also appends every event to a JSON Lines file. */
export class FileHistoryRecorder implements HistoryRecorder {
  private readonly recorded: RecordedEvent[] = [];
  private buffer: string[] = [];
  private bufferBytes = 0;
  private fd: number | null;
  /** The most events held (invokes and completions). */
  readonly maxEvents: number;
  private nextProcess = 0;
  /** Invokes not completed yet (each has one event reserved for its completion). */
  private open = 0;
  private originNs: bigint;
  private started = false;

  /**
   * Creates (or truncates) the history file at `path` (synchronously; `create` is the same, awaitable).
   * The clock runs from now until start() resets it.
   */
  constructor(
    /** The history file. */
    readonly path: string,
    options: FileHistoryRecorderOptions = {},
  ) {
    const maxEvents = options.maxEvents ?? DEFAULT_MAX_EVENTS;
    if (!Number.isSafeInteger(maxEvents) || maxEvents < 2) throw new RangeError(`maxEvents must be an integer >= 2, got ${maxEvents}`);
    this.maxEvents = maxEvents;
    try {
      this.fd = openSync(path, 'w');
    } catch (e) {
      throw new RecorderError('write-failed', `cannot create the history file ${path}: ${(e as Error).message}`);
    }
    this.originNs = process.hrtime.bigint();
  }

  /** As the constructor. */
  static async create(path: string, options: FileHistoryRecorderOptions = {}): Promise<FileHistoryRecorder> {
    return new FileHistoryRecorder(path, options);
  }

  /** Every event so far, in order. */
  get events(): readonly RecordedEvent[] {
    return this.recorded;
  }

  /** Invokes not yet completed. */
  get openOperations(): number {
    return this.open;
  }

  /** Sets time zero (the workload starts now). Only before the first event. */
  start(): void {
    if (this.recorded.length > 0) throw new RecorderError('late-start', 'start() after events were recorded would mix two time origins');
    this.originNs = process.hrtime.bigint();
    this.started = true;
  }

  /** Whether start() was called. */
  get isStarted(): boolean {
    return this.started;
  }

  /** Nanoseconds since start() (or since create() when start() was not called). */
  nowNs(): number {
    return Number(process.hrtime.bigint() - this.originNs);
  }

  newProcess(): number {
    return this.nextProcess++;
  }

  invoke(process: number, f: string, key: string, value: JsonValue, node?: string): OpRecord {
    this.assertOpen();
    if (!Number.isSafeInteger(process) || process < 0) throw new RangeError(`process must be a non-negative integer, got ${process}`);
    // Room for this invoke, its completion, and the completion of every operation already open.
    if (this.recorded.length + this.open + 2 > this.maxEvents) {
      throw new RecorderError(
        'too-many-events',
        `the history holds ${this.recorded.length} events, the most allowed is ${this.maxEvents}: refusing a new operation (shorten the run or lower the rate)`,
      );
    }
    this.append({ process, type: 'invoke', f, key, value, time: this.nowNs(), ...(node === undefined ? {} : { node }) });
    this.open++;
    let done = false;
    return {
      complete: (outcome: CallOutcome<JsonValue>): void => {
        if (done) throw new RecorderError('already-completed', `process ${process}'s ${f} ${JSON.stringify(key)} was already completed`);
        this.assertOpen();
        done = true;
        this.open--;
        // A fail or info repeats the invoke's value (as Jepsen does); the checker reads only ok values.
        const event: RecordedEvent =
          outcome.type === 'ok'
            ? { process, type: 'ok', f, key, value: outcome.value, time: this.nowNs(), ...(node === undefined ? {} : { node }) }
            : { process, type: outcome.type, f, key, value, time: this.nowNs(), ...(node === undefined ? {} : { node }), error: outcome.error };
        this.append(event);
      },
    };
  }

  /** Writes out whatever is buffered. */
  async flush(): Promise<void> {
    this.writeBuffer();
  }

  /** Flushes and closes the file. Idempotent; recording afterwards throws. */
  async close(): Promise<void> {
    if (this.fd === null) return;
    this.writeBuffer();
    const fd = this.fd;
    this.fd = null;
    closeSync(fd);
  }

  private assertOpen(): void {
    if (this.fd === null) throw new RecorderError('closed', `the history ${this.path} is closed`);
  }

  private append(event: RecordedEvent): void {
    this.recorded.push(event);
    const line = `${JSON.stringify(event)}\n`;
    this.buffer.push(line);
    this.bufferBytes += Buffer.byteLength(line);
    if (this.bufferBytes >= FLUSH_BYTES) this.writeBuffer();
  }

  private writeBuffer(): void {
    if (this.buffer.length === 0 || this.fd === null) return;
    const data = Buffer.from(this.buffer.join(''));
    this.buffer = [];
    this.bufferBytes = 0;
    try {
      for (let off = 0; off < data.length; ) off += writeSync(this.fd, data, off, data.length - off);
    } catch (e) {
      throw new RecorderError('write-failed', `cannot write the history file ${this.path}: ${(e as Error).message}`);
    }
  }
}
