#!/usr/bin/env node
// The `decisions` operators' command: the compiled build when there is one, else the sources.
const { existsSync } = require('node:fs');
const { join } = require('node:path');

const built = join(__dirname, '..', 'dist', 'cli', 'decisions.js');
const entry = existsSync(built) ? built : join(__dirname, '..', 'src', 'cli', 'decisions.ts');
if (!existsSync(built)) require('tsx/cjs');
void require(entry).main(process.argv);
