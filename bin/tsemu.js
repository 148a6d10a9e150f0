#!/usr/bin/env node
// The tsemu command: loads the compiled CLI (built by `npm install` through the
// `prepare` script) and hands it the arguments.
import { run } from '../dist/cli.js';

await run(process.argv.slice(2));
