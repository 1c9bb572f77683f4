import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

const executable = (path: string) => {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

function findChromium(): string | null {
  if (process.env.CHROMIUM_PATH) return process.env.CHROMIUM_PATH;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      if (dir && executable(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

/**
 * Chromium for the browser test of the Temporal Web UI: CHROMIUM_PATH, or chromium on PATH, or
 * (as root on Debian/Ubuntu) installed with apt-get. Otherwise the suite fails saying so.
 */
export function ensureChromium(log: (line: string) => void): string {
  const found = findChromium();
  if (found) return found;
  const root = process.getuid?.() === 0;
  if (root && spawnSync('sh', ['-c', 'command -v apt-get']).status === 0) {
    log("Chromium not found; installing Debian's chromium with apt-get (for the Web UI test)…");
    const install = spawnSync(
      'sh',
      [
        '-c',
        'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium',
      ],
      { stdio: 'inherit' },
    );
    const installed = findChromium();
    if (install.status === 0 && installed) return installed;
  }
  throw new Error(
    'The Web UI test needs Chromium: install it (Debian/Ubuntu: apt-get install chromium) or set CHROMIUM_PATH.',
  );
}
