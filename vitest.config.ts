import { defineConfig } from 'vitest/config';

// One run for every package's tests. Suites that start real processes ask the OS for free
// ports, so files may run in parallel; two workers match the 2-core machine CI runs on.
const reporters: string[] = ['default'];
if (process.env.BALLOT_TEST_JSON) reporters.push('json');

export default defineConfig({
  test: {
    include: ['packages/*/test/**/*.test.ts', 'test/**/*.test.ts', 'bench/**/*.test.ts'],
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    reporters,
    outputFile: process.env.BALLOT_TEST_JSON ? { json: process.env.BALLOT_TEST_JSON } : {},
  },
});
