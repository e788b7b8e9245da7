// `ballot check FILE`: check a JSON Lines history for linearizability.
//
// stdout: for an invalid history, a readable account of where it fails; then, always as the last
// line, one JSON object {"valid":true|false|"unknown","ops":N,"keys":K,"ms":T}.
// Exit status: 0 valid, 1 invalid, 2 unknown (time budget ran out) or bad input / bad arguments.

import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Command, CommanderError, Option } from 'commander';
import { HistoryError, pairOperations, parseHistory, type HistoryEvent, type Operation } from '../checker/history.js';
import { renderTimeline } from '../checker/html.js';
import { describeCall } from '../checker/describe.js';
import { MODELS, type Model, type ModelName } from '../checker/models.js';
import { checkHistory, type CheckResult } from '../checker/wgl.js';

export interface CheckCommandOptions {
  readonly model: ModelName;
  readonly out?: string;
  readonly timeBudgetMs?: number;
}

/** Where the command writes; tests pass their own. */
export interface CheckIo {
  readonly stdout: (line: string) => void;
  readonly stderr: (line: string) => void;
}

const processIo: CheckIo = {
  stdout: (l) => void process.stdout.write(`${l}\n`),
  stderr: (l) => void process.stderr.write(`${l}\n`),
};

export { describeCall };

export const EXIT_VALID = 0;
export const EXIT_INVALID = 1;
export const EXIT_UNKNOWN_OR_ERROR = 2;

/** One operation as a line a person can read: `p3 write 5 (ok, lines 12-15)`. */
export function describeOperation(op: Operation): string {
  const what = describeCall(op);
  const lines = op.completeLine === null ? `line ${op.invokeLine}, never completed` : `lines ${op.invokeLine}-${op.completeLine}`;
  return `p${op.process} ${what} (${op.status}, ${lines})`;
}

/** Checks one history text; returns the exit status. Never throws for bad input. */
export async function runCheck(file: string, options: CheckCommandOptions, io: CheckIo = processIo): Promise<number> {
  const startedMs = performance.now();
  const ms = (): number => Math.round(performance.now() - startedMs);
  let ops: Operation[];
  let events: HistoryEvent[];
  try {
    events = parseHistory(await readFile(file, 'utf8'));
    ops = pairOperations(events);
  } catch (err) {
    const message = err instanceof HistoryError ? `${file}: ${err.message}` : `${file}: ${(err as Error).message}`;
    io.stderr(`check: bad input: ${message}`);
    io.stdout(JSON.stringify({ valid: 'unknown', ops: 0, keys: 0, ms: ms(), error: message }));
    return EXIT_UNKNOWN_OR_ERROR;
  }
  const model: Model<unknown> = MODELS[options.model] as Model<unknown>;
  const foreign = ops.find((op) => !model.functions.has(op.f));
  if (foreign !== undefined) {
    const message = `${file}: line ${foreign.invokeLine}: "${foreign.f}" is not an operation of the ${model.name} model (it has ${[...model.functions].join(', ')}; see --model)`;
    io.stderr(`check: bad input: ${message}`);
    io.stdout(JSON.stringify({ valid: 'unknown', ops: 0, keys: 0, ms: ms(), error: message }));
    return EXIT_UNKNOWN_OR_ERROR;
  }
  const result: CheckResult = checkHistory(ops, {
    model,
    recordLinearizations: options.out !== undefined,
    ...(options.timeBudgetMs === undefined ? {} : { timeBudgetMs: options.timeBudgetMs }),
  });
  if (result.valid === false) {
    const p = result.point;
    io.stdout(`NOT linearizable: key ${JSON.stringify(result.key)} (${result.subHistory.length} operations)`);
    io.stdout(`  the longest linearization found (${p.linearized.length} operations), ending in state ${p.stateAfter}:`);
    for (const op of p.linearized) io.stdout(`    ${describeOperation(op)}`);
    io.stdout('  after it, none of these pending operations can take effect:');
    for (const op of p.stuck) io.stdout(`    ${describeOperation(op)}${op === p.overdue ? '   <- already returned' : ''}`);
  } else if (result.valid === 'unknown') {
    io.stdout(`unknown: the time budget ran out after ${result.keysChecked} of ${result.keys} keys`);
  }
  if (options.out !== undefined) {
    await mkdir(options.out, { recursive: true });
    // JSON has no Infinity (an indeterminate completion) and no Map (linearizations: key -> op ids).
    const replacer = (_k: string, v: unknown): unknown =>
      v === Infinity ? null : v instanceof Map ? Object.fromEntries([...(v as Map<string, readonly Operation[]>)].map(([k, l]) => [k, l.map((o) => o.id)])) : v;
    await writeFile(join(options.out, 'result.json'), `${JSON.stringify(result, replacer, 2)}\n`);
    await writeFile(join(options.out, 'timeline.html'), renderTimeline({ events, ops, result, title: `ballot check ${file}` }));
  }
  io.stdout(JSON.stringify({ valid: result.valid, ops: result.ops, keys: result.keys, ms: ms() }));
  return result.valid === true ? EXIT_VALID : result.valid === false ? EXIT_INVALID : EXIT_UNKNOWN_OR_ERROR;
}

function parseBudget(v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new CommanderError(2, 'check.budget', '--time-budget-ms must be a non-negative number');
  return n;
}

/** Adds `check FILE` to the `ballot` program. */
export function registerCheckCommand(program: Command, io: CheckIo = processIo): Command {
  const cmd = new Command('check')
    .description(
      'Check a JSON Lines history (Jepsen-style events: process, type invoke|ok|fail|info, f read|write|cas (register model) or put|get|delete|txn (kv model), key, value, time) ' +
        'for linearizability, key by key. The last stdout line is {"valid":true|false|"unknown","ops":N,"keys":K,"ms":T}; ' +
        'exit 0 valid, 1 invalid, 2 unknown or bad input.',
    )
    .argument('<file>', 'history file (.jsonl)')
    .addOption(new Option('--model <name>', 'sequential model of each key').choices(Object.keys(MODELS)).default('register'))
    .option('--out <dir>', 'also write DIR/result.json (failing sub-history, failure point) and DIR/timeline.html (open it in a browser)')
    .option('--time-budget-ms <ms>', 'give up with "unknown" after this long', parseBudget)
    .exitOverride((err: CommanderError) => {
      // Help exits 0; every argument error is bad input: exit 2.
      process.exit(err.exitCode === 0 ? 0 : EXIT_UNKNOWN_OR_ERROR);
    })
    .action(async (file: string, o: CheckCommandOptions) => {
      process.exitCode = await runCheck(file, o, io);
    });
  program.addCommand(cmd);
  return cmd;
}
