import { chromium, type Browser } from 'playwright-core';
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

/**
 * Chromium for the browser tests (the Temporal Web UI, the decision page): CHROMIUM_PATH, or
 * chromium on PATH. Nothing here installs it (.ci/run or the README does); without it a browser
 * test fails at once, saying how to get it.
 */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string {
  if (env.CHROMIUM_PATH) {
    if (executable(env.CHROMIUM_PATH)) return env.CHROMIUM_PATH;
    throw new Error(`CHROMIUM_PATH=${env.CHROMIUM_PATH} is not an executable file`);
  }
  for (const dir of (env.PATH ?? '').split(delimiter)) {
    for (const name of ['chromium', 'chromium-browser']) {
      if (dir && executable(join(dir, name))) return join(dir, name);
    }
  }
  throw new Error(
    'The browser tests need Chromium, and none is on PATH: install it (Debian/Ubuntu: apt-get install chromium) or set CHROMIUM_PATH to its executable.',
  );
}

/** Headless Chromium (findChromium's), quiet: no sandbox, GPU, QUIC, or calls home. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: findChromium(),
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
