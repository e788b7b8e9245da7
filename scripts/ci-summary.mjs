// Reads vitest's JSON report and prints the one closing line CI looks for.
// Exits 1 if the report is missing (the run died before reporting) or ran no test.
import { existsSync, readFileSync } from 'node:fs';

const file = process.argv[2];
if (!file || !existsSync(file)) {
  console.log('tests: 0 passed, 1 failed');
  console.error(`no test report at ${file ?? '(none given)'}: the test run did not finish`);
  process.exit(1);
}
const report = JSON.parse(readFileSync(file, 'utf8'));
const passed = report.numPassedTests ?? 0;
// A file that failed to load counts as a failure too, so a broken suite is never silent.
const failed = (report.numFailedTests ?? 0) + (report.numFailedTestSuites ?? 0) - countSuitesWithFailedTests(report);
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(passed === 0 || failed > 0 ? 1 : 0);

function countSuitesWithFailedTests(r) {
  return (r.testResults ?? []).filter((s) => (s.assertionResults ?? []).some((a) => a.status === 'failed')).length;
}
