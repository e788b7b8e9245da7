// Progress on stderr while a benchmark runs: the current stage and the seconds it has left.
// On a terminal one line is rewritten every second; otherwise a line is printed every 5 s.

export class Progress {
  private readonly startedAt = Date.now();
  private timer: NodeJS.Timeout | null = null;
  private label = '';
  private stageEndsAt: number | null = null;
  private readonly tty = process.stderr.isTTY === true;

  /** Starts a stage; pass its expected duration to show a countdown. */
  stage(label: string, durationMs?: number): void {
    this.label = label;
    this.stageEndsAt = durationMs === undefined ? null : Date.now() + durationMs;
    this.print();
    if (this.timer === null) {
      this.timer = setInterval(() => this.print(), this.tty ? 1000 : 5000);
      this.timer.unref();
    }
  }

  /** A message on its own line (keeps the progress line intact). */
  note(message: string): void {
    this.clearLine();
    process.stderr.write(`${message}\n`);
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.clearLine();
  }

  private print(): void {
    const elapsedS = Math.round((Date.now() - this.startedAt) / 1000);
    const left = this.stageEndsAt === null ? '' : `, ${Math.max(0, Math.ceil((this.stageEndsAt - Date.now()) / 1000))} s left`;
    const line = `[${String(Math.floor(elapsedS / 60)).padStart(2, '0')}:${String(elapsedS % 60).padStart(2, '0')}] ${this.label}${left}`;
    if (this.tty) process.stderr.write(`\r\x1b[K${line}`);
    else process.stderr.write(`${line}\n`);
  }

  private clearLine(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}
