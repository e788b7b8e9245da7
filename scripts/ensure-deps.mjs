// Installs the workspace's dependencies when they are missing or older than the lock file,
// so that `npm start` and `npm test` each work on a fresh clone by themselves.
import { existsSync, statSync } from 'node:fs';
import { execSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const marker = join(root, 'node_modules', '.package-lock.json');
const lock = join(root, 'package-lock.json');
const stale = !existsSync(marker) || (existsSync(lock) && statSync(lock).mtimeMs > statSync(marker).mtimeMs);
if (stale) {
  // `npm install` rather than `npm ci`: it installs the locked versions too, and npm 11 writes lock
  // files without other platforms' optional binaries (turbo's), which `npm ci` then rejects.
  console.error('[ballot] installing dependencies (npm install)...');
  execSync('npm install --no-audit --no-fund', {
    cwd: root,
    stdio: 'inherit',
  });
}
