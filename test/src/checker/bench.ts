// Micro benchmark (not a test): check a generated register history of 10,000 operations by 50
// processes over 100 keys, several times, and print the median time. Run:
//   npx tsc -p test/tsconfig.json && node test/dist/checker/bench.js [--ops 10000] [--processes 50] [--keys 100] [--info-percent 1]

import { performance } from 'node:perf_hooks';
import { generateHistory } from './generate.js';
import { formatHistory, pairOperations, parseHistory } from './history.js';
import { checkHistory } from './wgl.js';

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : fallback;
  if (!Number.isFinite(v) || v < 0) throw new RangeError(`--${name} must be a non-negative number`);
  return v;
}

const targetOps = flag('ops', 10_000);
const processes = flag('processes', 50);
const keys = flag('keys', 100);
const infoPercent = flag('info-percent', 1);
const rounds = flag('rounds', 5);

// A seeded xorshift32, so every run checks the same history.
let seed = 0x9e3779b9;
const rand = (): number => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};

// The tape's low two bits pick the action (generate.ts): invoke, take effect, complete, crash.
// We bias them so that most operations complete and `infoPercent` of actions crash one.
function tape(length: number): number[] {
  const t: number[] = [];
  for (let i = 0; i < length; i++) {
    const r = rand() * 100;
    const action = r < infoPercent ? 3 : r < 40 ? 0 : r < 70 ? 1 : 2;
    // An even argument makes "complete" take effect first (ok) rather than fail.
    const arg = Math.floor(rand() * 2 ** 24);
    t.push(action + 4 * (action === 2 ? arg * 2 : arg));
  }
  return t;
}

// Grow the tape until the history has the requested number of operations (invokes), then cut it
// there; operations left open by the cut are indeterminate, as in a real history.
let length = targetOps * 3;
let events = generateHistory(tape(length), { processes, keys, values: 5 });
while (events.filter((e) => e.type === 'invoke').length < targetOps) {
  length *= 2;
  events = generateHistory(tape(length), { processes, keys, values: 5 });
}
let invokes = 0;
const cut = events.findIndex((e) => e.type === 'invoke' && ++invokes > targetOps);
const text = formatHistory(cut >= 0 ? events.slice(0, cut) : events);

const timesMs: number[] = [];
let last: ReturnType<typeof checkHistory> | null = null;
for (let i = 0; i < rounds; i++) {
  const t0 = performance.now();
  const ops = pairOperations(parseHistory(text));
  last = checkHistory(ops);
  timesMs.push(performance.now() - t0);
}
timesMs.sort((a, b) => a - b);
const counts = { ok: 0, fail: 0, info: 0 };
for (const e of parseHistory(text)) if (e.type !== 'invoke') counts[e.type]++;
const summary = {
  ops: last?.ops,
  keys: last?.keys,
  processes: new Set(parseHistory(text).map((e) => e.process)).size,
  completions: counts,
  valid: last?.valid,
  medianMs: Math.round(timesMs[Math.floor(timesMs.length / 2)] ?? NaN),
  minMs: Math.round(timesMs[0] ?? NaN),
  rounds,
};
console.log(JSON.stringify(summary));
