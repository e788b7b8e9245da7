// A harness for tests that run part of src in a child process (to kill it with SIGKILL mid-write,
// or to see that it exits by itself). Before the file's tests, whole src directories are
// transpiled (types stripped, not type-checked) into a fresh folder inside the repository's
// node_modules/.cache, so the child resolves classic-level, ws, msgpackr, pino ... the way the
// package does; the child's own script is written next to them as child.js. On request the
// harness also makes a temp data folder for the children to share. Every child started through
// the harness is killed by PID after each test (also when the test failed), and both folders are
// removed after the file's tests.

import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { afterAll, afterEach, beforeAll } from 'vitest';

const here = dirname(fileURLToPath(import.meta.url));
const srcDir = resolve(here, '../src');
const cacheDir = resolve(here, '../../../node_modules/.cache');

export interface ChildHarnessOptions {
  /** Names the build folder: node_modules/.cache/ballot-<name>-<pid>. */
  readonly name: string;
  /**
   * Directories of src to transpile, e.g. ['core', 'storage']. Whole directories, so an import
   * added to any of their files later still resolves.
   */
  readonly srcDirs: readonly string[];
  /** The child's ES module source; it imports the transpiled code as './<dir>/<file>.js'. */
  readonly childSource: string;
  /** If set, a temp folder (under the OS temp dir, named with this prefix) made for the file's tests. */
  readonly dataDirPrefix?: string;
}

export interface ChildHarness {
  /**
   * Starts `node child.js ...args` (once the file's beforeAll hooks ran). stdout and stderr are
   * piped; stdin is piped or ignored as asked. The child is killed after the test if still running.
   */
  spawn(args: readonly string[], stdin?: 'pipe' | 'ignore'): ChildProcess;
  /** The temp data folder (with dataDirPrefix, once the file's beforeAll hooks ran). */
  readonly dataDir: string;
}

/** Registers the build (beforeAll), the kill (afterEach) and the clean-up (afterAll) hooks. */
export function childProcessHarness(opts: ChildHarnessOptions): ChildHarness {
  const buildDir = join(cacheDir, `ballot-${opts.name}-${process.pid}`);
  const running = new Set<ChildProcess>();
  let dataDir: string | null = null;

  beforeAll(async () => {
    const files = (
      await Promise.all(opts.srcDirs.map(async (d) => (await readdir(join(srcDir, d))).map((f) => `${d}/${f}`)))
    )
      .flat()
      .filter((f) => f.endsWith('.ts'));
    for (const file of files) {
      const source = await readFile(join(srcDir, file), 'utf8');
      const out = ts.transpileModule(source, {
        compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true },
      });
      const target = join(buildDir, file.replace(/\.ts$/, '.js'));
      await mkdir(dirname(target), { recursive: true });
      await writeFile(target, out.outputText);
    }
    await writeFile(join(buildDir, 'package.json'), '{"type":"module"}\n');
    await writeFile(join(buildDir, 'child.js'), opts.childSource);
    if (opts.dataDirPrefix !== undefined) dataDir = await mkdtemp(join(tmpdir(), opts.dataDirPrefix));
  });

  afterEach(() => {
    for (const child of running) {
      if (child.exitCode === null && child.signalCode === null && child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }
    running.clear();
  });

  afterAll(async () => {
    await rm(buildDir, { recursive: true, force: true });
    if (dataDir !== null) await rm(dataDir, { recursive: true, force: true });
  });

  return {
    spawn(args, stdin = 'ignore') {
      const child = spawn(process.execPath, [join(buildDir, 'child.js'), ...args], { stdio: [stdin, 'pipe', 'pipe'] });
      running.add(child);
      return child;
    },
    get dataDir() {
      if (dataDir === null) throw new Error('no data folder: pass dataDirPrefix, and use it inside a test');
      return dataDir;
    },
  };
}
